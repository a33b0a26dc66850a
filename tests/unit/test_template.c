/*
 * Unit tests for the Mustache engine (src/core/template.c).
 *
 * The first tables are every case of the six spec modules we implement
 * (https://github.com/mustache/spec, specs/comments, interpolation,
 * sections, inverted, partials and delimiters .yml, as of spec v1.3), with
 * data and partials written as JSON text.  Lambdas, inheritance and dynamic
 * names are optional modules and out of scope.  The tables after them pin
 * down what the spec leaves open and what is ours: number formatting,
 * truthiness of JSON values, error messages, the recursion and work bounds,
 * and loading a directory.
 */
#include <sys/stat.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "template.h"

struct spec {
	const char	*name;
	const char	*data;		/* JSON */
	const char	*tpl;
	const char	*want;
	const char	*partials;	/* JSON object of name: template */
};

static const struct spec comments[] = {
	{ "Inline", "{}", "12345{{! Comment Block! }}67890", "1234567890", NULL },
	{ "Multiline", "{}",
	  "12345{{!\n  This is a\n  multi-line comment...\n}}67890\n",
	  "1234567890\n", NULL },
	{ "Standalone", "{}", "Begin.\n{{! Comment Block! }}\nEnd.\n",
	  "Begin.\nEnd.\n", NULL },
	{ "Indented Standalone", "{}",
	  "Begin.\n  {{! Indented Comment Block! }}\nEnd.\n",
	  "Begin.\nEnd.\n", NULL },
	{ "Standalone Line Endings", "{}",
	  "|\r\n{{! Standalone Comment }}\r\n|", "|\r\n|", NULL },
	{ "Standalone Without Previous Line", "{}",
	  "  {{! I'm Still Standalone }}\n!", "!", NULL },
	{ "Standalone Without Newline", "{}",
	  "!\n  {{! I'm Still Standalone }}", "!\n", NULL },
	{ "Multiline Standalone", "{}",
	  "Begin.\n{{!\nSomething's going on here...\n}}\nEnd.\n",
	  "Begin.\nEnd.\n", NULL },
	{ "Indented Multiline Standalone", "{}",
	  "Begin.\n  {{!\n    Something's going on here...\n  }}\nEnd.\n",
	  "Begin.\nEnd.\n", NULL },
	{ "Indented Inline", "{}", "  12 {{! 34 }}\n", "  12 \n", NULL },
	{ "Surrounding Whitespace", "{}", "12345 {{! Comment Block! }} 67890",
	  "12345  67890", NULL },
	{ "Variable Name Collision",
	  "{\"! comment\":1,\"! comment \":2,\"!comment\":3,\"comment\":4}",
	  "comments never show: >{{! comment }}<",
	  "comments never show: ><", NULL },
};

static const struct spec interpolation[] = {
	{ "No Interpolation", "{}", "Hello from {Mustache}!\n",
	  "Hello from {Mustache}!\n", NULL },
	{ "Basic Interpolation", "{\"subject\":\"world\"}",
	  "Hello, {{subject}}!\n", "Hello, world!\n", NULL },
	{ "No Re-interpolation",
	  "{\"template\":\"{{planet}}\",\"planet\":\"Earth\"}",
	  "{{template}}: {{planet}}", "{{planet}}: Earth", NULL },
	{ "HTML Escaping", "{\"forbidden\":\"& \\\" < >\"}",
	  "These characters should be HTML escaped: {{forbidden}}\n",
	  "These characters should be HTML escaped: &amp; &quot; &lt; &gt;\n",
	  NULL },
	{ "Triple Mustache", "{\"forbidden\":\"& \\\" < >\"}",
	  "These characters should not be HTML escaped: {{{forbidden}}}\n",
	  "These characters should not be HTML escaped: & \" < >\n", NULL },
	{ "Ampersand", "{\"forbidden\":\"& \\\" < >\"}",
	  "These characters should not be HTML escaped: {{&forbidden}}\n",
	  "These characters should not be HTML escaped: & \" < >\n", NULL },
	{ "Basic Integer Interpolation", "{\"mph\":85}",
	  "\"{{mph}} miles an hour!\"", "\"85 miles an hour!\"", NULL },
	{ "Triple Mustache Integer Interpolation", "{\"mph\":85}",
	  "\"{{{mph}}} miles an hour!\"", "\"85 miles an hour!\"", NULL },
	{ "Ampersand Integer Interpolation", "{\"mph\":85}",
	  "\"{{&mph}} miles an hour!\"", "\"85 miles an hour!\"", NULL },
	{ "Basic Decimal Interpolation", "{\"power\":1.210}",
	  "\"{{power}} jiggawatts!\"", "\"1.21 jiggawatts!\"", NULL },
	{ "Triple Mustache Decimal Interpolation", "{\"power\":1.210}",
	  "\"{{{power}}} jiggawatts!\"", "\"1.21 jiggawatts!\"", NULL },
	{ "Ampersand Decimal Interpolation", "{\"power\":1.210}",
	  "\"{{&power}} jiggawatts!\"", "\"1.21 jiggawatts!\"", NULL },
	{ "Basic Null Interpolation", "{\"cannot\":null}",
	  "I ({{cannot}}) be seen!", "I () be seen!", NULL },
	{ "Triple Mustache Null Interpolation", "{\"cannot\":null}",
	  "I ({{{cannot}}}) be seen!", "I () be seen!", NULL },
	{ "Ampersand Null Interpolation", "{\"cannot\":null}",
	  "I ({{&cannot}}) be seen!", "I () be seen!", NULL },
	{ "Basic Context Miss Interpolation", "{}",
	  "I ({{cannot}}) be seen!", "I () be seen!", NULL },
	{ "Triple Mustache Context Miss Interpolation", "{}",
	  "I ({{{cannot}}}) be seen!", "I () be seen!", NULL },
	{ "Ampersand Context Miss Interpolation", "{}",
	  "I ({{&cannot}}) be seen!", "I () be seen!", NULL },
	{ "Dotted Names - Basic Interpolation",
	  "{\"person\":{\"name\":\"Joe\"}}",
	  "\"{{person.name}}\" == \"{{#person}}{{name}}{{/person}}\"",
	  "\"Joe\" == \"Joe\"", NULL },
	{ "Dotted Names - Triple Mustache Interpolation",
	  "{\"person\":{\"name\":\"Joe\"}}",
	  "\"{{{person.name}}}\" == \"{{#person}}{{{name}}}{{/person}}\"",
	  "\"Joe\" == \"Joe\"", NULL },
	{ "Dotted Names - Ampersand Interpolation",
	  "{\"person\":{\"name\":\"Joe\"}}",
	  "\"{{&person.name}}\" == \"{{#person}}{{&name}}{{/person}}\"",
	  "\"Joe\" == \"Joe\"", NULL },
	{ "Dotted Names - Arbitrary Depth",
	  "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"name\":\"Phil\"}}}}}}",
	  "\"{{a.b.c.d.e.name}}\" == \"Phil\"", "\"Phil\" == \"Phil\"", NULL },
	{ "Dotted Names - Broken Chains", "{\"a\":{}}",
	  "\"{{a.b.c}}\" == \"\"", "\"\" == \"\"", NULL },
	{ "Dotted Names - Broken Chain Resolution",
	  "{\"a\":{\"b\":{}},\"c\":{\"name\":\"Jim\"}}",
	  "\"{{a.b.c.name}}\" == \"\"", "\"\" == \"\"", NULL },
	{ "Dotted Names - Initial Resolution",
	  "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"name\":\"Phil\"}}}}},"
	  "\"b\":{\"c\":{\"d\":{\"e\":{\"name\":\"Wrong\"}}}}}",
	  "\"{{#a}}{{b.c.d.e.name}}{{/a}}\" == \"Phil\"",
	  "\"Phil\" == \"Phil\"", NULL },
	{ "Dotted Names - Context Precedence",
	  "{\"a\":{\"b\":{}},\"b\":{\"c\":\"ERROR\"}}",
	  "{{#a}}{{b.c}}{{/a}}", "", NULL },
	{ "Dotted Names are never single keys", "{\"a.b\":\"c\"}",
	  "{{a.b}}", "", NULL },
	{ "Dotted Names - No Masking", "{\"a.b\":\"c\",\"a\":{\"b\":\"d\"}}",
	  "{{a.b}}", "d", NULL },
	{ "Implicit Iterators - Basic Interpolation", "\"world\"",
	  "Hello, {{.}}!\n", "Hello, world!\n", NULL },
	{ "Implicit Iterators - HTML Escaping", "\"& \\\" < >\"",
	  "These characters should be HTML escaped: {{.}}\n",
	  "These characters should be HTML escaped: &amp; &quot; &lt; &gt;\n",
	  NULL },
	{ "Implicit Iterators - Triple Mustache", "\"& \\\" < >\"",
	  "These characters should not be HTML escaped: {{{.}}}\n",
	  "These characters should not be HTML escaped: & \" < >\n", NULL },
	{ "Implicit Iterators - Ampersand", "\"& \\\" < >\"",
	  "These characters should not be HTML escaped: {{&.}}\n",
	  "These characters should not be HTML escaped: & \" < >\n", NULL },
	{ "Implicit Iterators - Basic Integer Interpolation", "85",
	  "\"{{.}} miles an hour!\"", "\"85 miles an hour!\"", NULL },
	{ "Interpolation - Surrounding Whitespace", "{\"string\":\"---\"}",
	  "| {{string}} |", "| --- |", NULL },
	{ "Triple Mustache - Surrounding Whitespace", "{\"string\":\"---\"}",
	  "| {{{string}}} |", "| --- |", NULL },
	{ "Ampersand - Surrounding Whitespace", "{\"string\":\"---\"}",
	  "| {{&string}} |", "| --- |", NULL },
	{ "Interpolation - Standalone", "{\"string\":\"---\"}",
	  "  {{string}}\n", "  ---\n", NULL },
	{ "Triple Mustache - Standalone", "{\"string\":\"---\"}",
	  "  {{{string}}}\n", "  ---\n", NULL },
	{ "Ampersand - Standalone", "{\"string\":\"---\"}",
	  "  {{&string}}\n", "  ---\n", NULL },
	{ "Interpolation With Padding", "{\"string\":\"---\"}",
	  "|{{ string }}|", "|---|", NULL },
	{ "Triple Mustache With Padding", "{\"string\":\"---\"}",
	  "|{{{ string }}}|", "|---|", NULL },
	{ "Ampersand With Padding", "{\"string\":\"---\"}",
	  "|{{& string }}|", "|---|", NULL },
};

static const struct spec sections[] = {
	{ "Truthy", "{\"boolean\":true}",
	  "\"{{#boolean}}This should be rendered.{{/boolean}}\"",
	  "\"This should be rendered.\"", NULL },
	{ "Falsey", "{\"boolean\":false}",
	  "\"{{#boolean}}This should not be rendered.{{/boolean}}\"",
	  "\"\"", NULL },
	{ "Null is falsey", "{\"null\":null}",
	  "\"{{#null}}This should not be rendered.{{/null}}\"", "\"\"", NULL },
	{ "Context", "{\"context\":{\"name\":\"Joe\"}}",
	  "\"{{#context}}Hi {{name}}.{{/context}}\"", "\"Hi Joe.\"", NULL },
	{ "Parent contexts",
	  "{\"a\":\"foo\",\"b\":\"wrong\",\"sec\":{\"b\":\"bar\"},"
	  "\"c\":{\"d\":\"baz\"}}",
	  "\"{{#sec}}{{a}}, {{b}}, {{c.d}}{{/sec}}\"", "\"foo, bar, baz\"",
	  NULL },
	{ "Variable test", "{\"foo\":\"bar\"}",
	  "\"{{#foo}}{{.}} is {{foo}}{{/foo}}\"", "\"bar is bar\"", NULL },
	{ "List Contexts",
	  "{\"tops\":[{\"tname\":{\"upper\":\"A\",\"lower\":\"a\"},"
	  "\"middles\":[{\"mname\":\"1\","
	  "\"bottoms\":[{\"bname\":\"x\"},{\"bname\":\"y\"}]}]}]}",
	  "{{#tops}}{{#middles}}{{tname.lower}}{{mname}}.{{#bottoms}}"
	  "{{tname.upper}}{{mname}}{{bname}}.{{/bottoms}}{{/middles}}{{/tops}}",
	  "a1.A1x.A1y.", NULL },
	{ "Deeply Nested Contexts",
	  "{\"a\":{\"one\":1},\"b\":{\"two\":2},"
	  "\"c\":{\"three\":3,\"d\":{\"four\":4,\"five\":5}}}",
	  "{{#a}}\n{{one}}\n{{#b}}\n{{one}}{{two}}{{one}}\n{{#c}}\n"
	  "{{one}}{{two}}{{three}}{{two}}{{one}}\n{{#d}}\n"
	  "{{one}}{{two}}{{three}}{{four}}{{three}}{{two}}{{one}}\n{{#five}}\n"
	  "{{one}}{{two}}{{three}}{{four}}{{five}}{{four}}{{three}}{{two}}"
	  "{{one}}\n"
	  "{{one}}{{two}}{{three}}{{four}}{{.}}6{{.}}{{four}}{{three}}{{two}}"
	  "{{one}}\n"
	  "{{one}}{{two}}{{three}}{{four}}{{five}}{{four}}{{three}}{{two}}"
	  "{{one}}\n{{/five}}\n"
	  "{{one}}{{two}}{{three}}{{four}}{{three}}{{two}}{{one}}\n{{/d}}\n"
	  "{{one}}{{two}}{{three}}{{two}}{{one}}\n{{/c}}\n"
	  "{{one}}{{two}}{{one}}\n{{/b}}\n{{one}}\n{{/a}}\n",
	  "1\n121\n12321\n1234321\n123454321\n12345654321\n123454321\n"
	  "1234321\n12321\n121\n1\n", NULL },
	{ "List", "{\"list\":[{\"item\":1},{\"item\":2},{\"item\":3}]}",
	  "\"{{#list}}{{item}}{{/list}}\"", "\"123\"", NULL },
	{ "Empty List", "{\"list\":[]}",
	  "\"{{#list}}Yay lists!{{/list}}\"", "\"\"", NULL },
	{ "Doubled", "{\"bool\":true,\"two\":\"second\"}",
	  "{{#bool}}\n* first\n{{/bool}}\n* {{two}}\n{{#bool}}\n* third\n"
	  "{{/bool}}\n",
	  "* first\n* second\n* third\n", NULL },
	{ "Nested (Truthy)", "{\"bool\":true}",
	  "| A {{#bool}}B {{#bool}}C{{/bool}} D{{/bool}} E |",
	  "| A B C D E |", NULL },
	{ "Nested (Falsey)", "{\"bool\":false}",
	  "| A {{#bool}}B {{#bool}}C{{/bool}} D{{/bool}} E |", "| A  E |",
	  NULL },
	{ "Context Misses", "{}",
	  "[{{#missing}}Found key 'missing'!{{/missing}}]", "[]", NULL },
	{ "Implicit Iterator - String",
	  "{\"list\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}",
	  "\"{{#list}}({{.}}){{/list}}\"", "\"(a)(b)(c)(d)(e)\"", NULL },
	{ "Implicit Iterator - Integer", "{\"list\":[1,2,3,4,5]}",
	  "\"{{#list}}({{.}}){{/list}}\"", "\"(1)(2)(3)(4)(5)\"", NULL },
	{ "Implicit Iterator - Decimal", "{\"list\":[1.10,2.20,3.30,4.40,5.50]}",
	  "\"{{#list}}({{.}}){{/list}}\"", "\"(1.1)(2.2)(3.3)(4.4)(5.5)\"",
	  NULL },
	{ "Implicit Iterator - Array", "{\"list\":[[1,2,3],[\"a\",\"b\",\"c\"]]}",
	  "\"{{#list}}({{#.}}{{.}}{{/.}}){{/list}}\"", "\"(123)(abc)\"", NULL },
	{ "Implicit Iterator - HTML Escaping",
	  "{\"list\":[\"&\",\"\\\"\",\"<\",\">\"]}",
	  "\"{{#list}}({{.}}){{/list}}\"", "\"(&amp;)(&quot;)(&lt;)(&gt;)\"",
	  NULL },
	{ "Implicit Iterator - Triple mustache",
	  "{\"list\":[\"&\",\"\\\"\",\"<\",\">\"]}",
	  "\"{{#list}}({{{.}}}){{/list}}\"", "\"(&)(\")(<)(>)\"", NULL },
	{ "Implicit Iterator - Ampersand",
	  "{\"list\":[\"&\",\"\\\"\",\"<\",\">\"]}",
	  "\"{{#list}}({{&.}}){{/list}}\"", "\"(&)(\")(<)(>)\"", NULL },
	{ "Implicit Iterator - Root-level", "[{\"value\":\"a\"},{\"value\":\"b\"}]",
	  "\"{{#.}}({{value}}){{/.}}\"", "\"(a)(b)\"", NULL },
	{ "Dotted Names - Truthy", "{\"a\":{\"b\":{\"c\":true}}}",
	  "\"{{#a.b.c}}Here{{/a.b.c}}\" == \"Here\"", "\"Here\" == \"Here\"",
	  NULL },
	{ "Dotted Names - Falsey", "{\"a\":{\"b\":{\"c\":false}}}",
	  "\"{{#a.b.c}}Here{{/a.b.c}}\" == \"\"", "\"\" == \"\"", NULL },
	{ "Dotted Names - Broken Chains", "{\"a\":{}}",
	  "\"{{#a.b.c}}Here{{/a.b.c}}\" == \"\"", "\"\" == \"\"", NULL },
	{ "Surrounding Whitespace", "{\"boolean\":true}",
	  " | {{#boolean}}\t|\t{{/boolean}} | \n", " | \t|\t | \n", NULL },
	{ "Internal Whitespace", "{\"boolean\":true}",
	  " | {{#boolean}} {{! Important Whitespace }}\n {{/boolean}} | \n",
	  " |  \n  | \n", NULL },
	{ "Indented Inline Sections", "{\"boolean\":true}",
	  " {{#boolean}}YES{{/boolean}}\n {{#boolean}}GOOD{{/boolean}}\n",
	  " YES\n GOOD\n", NULL },
	{ "Standalone Lines", "{\"boolean\":true}",
	  "| This Is\n{{#boolean}}\n|\n{{/boolean}}\n| A Line\n",
	  "| This Is\n|\n| A Line\n", NULL },
	{ "Indented Standalone Lines", "{\"boolean\":true}",
	  "| This Is\n  {{#boolean}}\n|\n  {{/boolean}}\n| A Line\n",
	  "| This Is\n|\n| A Line\n", NULL },
	{ "Standalone Line Endings", "{\"boolean\":true}",
	  "|\r\n{{#boolean}}\r\n{{/boolean}}\r\n|", "|\r\n|", NULL },
	{ "Standalone Without Previous Line", "{\"boolean\":true}",
	  "  {{#boolean}}\n#{{/boolean}}\n/", "#\n/", NULL },
	{ "Standalone Without Newline", "{\"boolean\":true}",
	  "#{{#boolean}}\n/\n  {{/boolean}}", "#\n/\n", NULL },
	{ "Padding", "{\"boolean\":true}",
	  "|{{# boolean }}={{/ boolean }}|", "|=|", NULL },
};

static const struct spec inverted[] = {
	{ "Falsey", "{\"boolean\":false}",
	  "\"{{^boolean}}This should be rendered.{{/boolean}}\"",
	  "\"This should be rendered.\"", NULL },
	{ "Truthy", "{\"boolean\":true}",
	  "\"{{^boolean}}This should not be rendered.{{/boolean}}\"",
	  "\"\"", NULL },
	{ "Null is falsey", "{\"null\":null}",
	  "\"{{^null}}This should be rendered.{{/null}}\"",
	  "\"This should be rendered.\"", NULL },
	{ "Context", "{\"context\":{\"name\":\"Joe\"}}",
	  "\"{{^context}}Hi {{name}}.{{/context}}\"", "\"\"", NULL },
	{ "List", "{\"list\":[{\"n\":1},{\"n\":2},{\"n\":3}]}",
	  "\"{{^list}}{{n}}{{/list}}\"", "\"\"", NULL },
	{ "Empty List", "{\"list\":[]}",
	  "\"{{^list}}Yay lists!{{/list}}\"", "\"Yay lists!\"", NULL },
	{ "Doubled", "{\"bool\":false,\"two\":\"second\"}",
	  "{{^bool}}\n* first\n{{/bool}}\n* {{two}}\n{{^bool}}\n* third\n"
	  "{{/bool}}\n",
	  "* first\n* second\n* third\n", NULL },
	{ "Nested (Falsey)", "{\"bool\":false}",
	  "| A {{^bool}}B {{^bool}}C{{/bool}} D{{/bool}} E |",
	  "| A B C D E |", NULL },
	{ "Nested (Truthy)", "{\"bool\":true}",
	  "| A {{^bool}}B {{^bool}}C{{/bool}} D{{/bool}} E |", "| A  E |",
	  NULL },
	{ "Context Misses", "{}",
	  "[{{^missing}}Cannot find key 'missing'!{{/missing}}]",
	  "[Cannot find key 'missing'!]", NULL },
	{ "Dotted Names - Truthy", "{\"a\":{\"b\":{\"c\":true}}}",
	  "\"{{^a.b.c}}Not Here{{/a.b.c}}\" == \"\"", "\"\" == \"\"", NULL },
	{ "Dotted Names - Falsey", "{\"a\":{\"b\":{\"c\":false}}}",
	  "\"{{^a.b.c}}Not Here{{/a.b.c}}\" == \"Not Here\"",
	  "\"Not Here\" == \"Not Here\"", NULL },
	{ "Dotted Names - Broken Chains", "{\"a\":{}}",
	  "\"{{^a.b.c}}Not Here{{/a.b.c}}\" == \"Not Here\"",
	  "\"Not Here\" == \"Not Here\"", NULL },
	{ "Surrounding Whitespace", "{\"boolean\":false}",
	  " | {{^boolean}}\t|\t{{/boolean}} | \n", " | \t|\t | \n", NULL },
	{ "Internal Whitespace", "{\"boolean\":false}",
	  " | {{^boolean}} {{! Important Whitespace }}\n {{/boolean}} | \n",
	  " |  \n  | \n", NULL },
	{ "Indented Inline Sections", "{\"boolean\":false}",
	  " {{^boolean}}NO{{/boolean}}\n {{^boolean}}WAY{{/boolean}}\n",
	  " NO\n WAY\n", NULL },
	{ "Standalone Lines", "{\"boolean\":false}",
	  "| This Is\n{{^boolean}}\n|\n{{/boolean}}\n| A Line\n",
	  "| This Is\n|\n| A Line\n", NULL },
	{ "Standalone Indented Lines", "{\"boolean\":false}",
	  "| This Is\n  {{^boolean}}\n|\n  {{/boolean}}\n| A Line\n",
	  "| This Is\n|\n| A Line\n", NULL },
	{ "Standalone Line Endings", "{\"boolean\":false}",
	  "|\r\n{{^boolean}}\r\n{{/boolean}}\r\n|", "|\r\n|", NULL },
	{ "Standalone Without Previous Line", "{\"boolean\":false}",
	  "  {{^boolean}}\n^{{/boolean}}\n/", "^\n/", NULL },
	{ "Standalone Without Newline", "{\"boolean\":false}",
	  "^{{^boolean}}\n/\n  {{/boolean}}", "^\n/\n", NULL },
	{ "Padding", "{\"boolean\":false}",
	  "|{{^ boolean }}={{/ boolean }}|", "|=|", NULL },
};

static const struct spec partials[] = {
	{ "Basic Behavior", "{}", "\"{{>text}}\"", "\"from partial\"",
	  "{\"text\":\"from partial\"}" },
	{ "Failed Lookup", "{}", "\"{{>text}}\"", "\"\"", "{}" },
	{ "Context", "{\"text\":\"content\"}", "\"{{>partial}}\"",
	  "\"*content*\"", "{\"partial\":\"*{{text}}*\"}" },
	{ "Recursion",
	  "{\"content\":\"X\",\"nodes\":[{\"content\":\"Y\",\"nodes\":[]}]}",
	  "{{>node}}", "X<Y<>>",
	  "{\"node\":\"{{content}}<{{#nodes}}{{>node}}{{/nodes}}>\"}" },
	{ "Nested", "{\"a\":\"hello\",\"b\":\"world\"}", "{{>outer}}",
	  "*hello world!*",
	  "{\"outer\":\"*{{a}} {{>inner}}*\",\"inner\":\"{{b}}!\"}" },
	{ "Surrounding Whitespace", "{}", "| {{>partial}} |", "| \t|\t |",
	  "{\"partial\":\"\\t|\\t\"}" },
	{ "Inline Indentation", "{\"data\":\"|\"}",
	  "  {{data}}  {{> partial}}\n", "  |  >\n>\n",
	  "{\"partial\":\">\\n>\"}" },
	{ "Standalone Line Endings", "{}", "|\r\n{{>partial}}\r\n|",
	  "|\r\n>|", "{\"partial\":\">\"}" },
	{ "Standalone Without Previous Line", "{}", "  {{>partial}}\n>",
	  "  >\n  >>", "{\"partial\":\">\\n>\"}" },
	{ "Standalone Without Newline", "{}", ">\n  {{>partial}}",
	  ">\n  >\n  >", "{\"partial\":\">\\n>\"}" },
	{ "Standalone Indentation", "{\"content\":\"<\\n->\"}",
	  "\\\n {{>partial}}\n/\n", "\\\n |\n <\n->\n |\n/\n",
	  "{\"partial\":\"|\\n{{{content}}}\\n|\\n\"}" },
	{ "Padding Whitespace", "{\"boolean\":true}", "|{{> partial }}|",
	  "|[]|", "{\"partial\":\"[]\"}" },
};

static const struct spec delimiters[] = {
	{ "Pair Behavior", "{\"text\":\"Hey!\"}", "{{=<% %>=}}(<%text%>)",
	  "(Hey!)", NULL },
	{ "Special Characters", "{\"text\":\"It worked!\"}",
	  "({{=[ ]=}}[text])", "(It worked!)", NULL },
	{ "Sections", "{\"section\":true,\"data\":\"I got interpolated.\"}",
	  "[\n{{#section}}\n  {{data}}\n  |data|\n{{/section}}\n\n"
	  "{{= | | =}}\n|#section|\n  {{data}}\n  |data|\n|/section|\n]\n",
	  "[\n  I got interpolated.\n  |data|\n\n  {{data}}\n"
	  "  I got interpolated.\n]\n", NULL },
	{ "Inverted Sections",
	  "{\"section\":false,\"data\":\"I got interpolated.\"}",
	  "[\n{{^section}}\n  {{data}}\n  |data|\n{{/section}}\n\n"
	  "{{= | | =}}\n|^section|\n  {{data}}\n  |data|\n|/section|\n]\n",
	  "[\n  I got interpolated.\n  |data|\n\n  {{data}}\n"
	  "  I got interpolated.\n]\n", NULL },
	{ "Partial Inheritence", "{\"value\":\"yes\"}",
	  "[ {{>include}} ]\n{{= | | =}}\n[ |>include| ]\n",
	  "[ .yes. ]\n[ .yes. ]\n", "{\"include\":\".{{value}}.\"}" },
	{ "Post-Partial Behavior", "{\"value\":\"yes\"}",
	  "[ {{>include}} ]\n[ .{{value}}.  .|value|. ]\n",
	  "[ .yes.  .yes. ]\n[ .yes.  .|value|. ]\n",
	  "{\"include\":\".{{value}}. {{= | | =}} .|value|.\"}" },
	{ "Surrounding Whitespace", "{}", "| {{=@ @=}} |", "|  |", NULL },
	{ "Outlying Whitespace (Inline)", "{}", " | {{=@ @=}}\n", " | \n",
	  NULL },
	{ "Standalone Tag", "{}", "Begin.\n{{=@ @=}}\nEnd.\n",
	  "Begin.\nEnd.\n", NULL },
	{ "Indented Standalone Tag", "{}", "Begin.\n  {{=@ @=}}\nEnd.\n",
	  "Begin.\nEnd.\n", NULL },
	{ "Standalone Line Endings", "{}", "|\r\n{{= @ @ =}}\r\n|", "|\r\n|",
	  NULL },
	{ "Standalone Without Previous Line", "{}", "  {{=@ @=}}\n=", "=",
	  NULL },
	{ "Standalone Without Newline", "{}", "=\n  {{=@ @=}}", "=\n", NULL },
	{ "Pair with Padding", "{}", "|{{= @   @ =}}|", "||", NULL },
};

/* What the spec leaves open, or what is ours. */
static const struct spec extras[] = {
	{ "apostrophe is escaped", "{\"x\":\"'<a href=\\\"#\\\">\"}", "{{x}}",
	  "&#39;&lt;a href=&quot;#&quot;&gt;", NULL },
	{ "numbers", "{\"a\":1.5,\"b\":2.0,\"c\":-3,\"d\":0.1,\"e\":1e21,"
	  "\"f\":100,\"g\":-0.25}",
	  "{{a}} {{b}} {{c}} {{d}} {{e}} {{f}} {{g}}",
	  "1.5 2 -3 0.1 1e+21 100 -0.25", NULL },
	{ "booleans interpolate as words", "{\"t\":true,\"f\":false}",
	  "{{t}}/{{f}}", "true/false", NULL },
	{ "objects and lists interpolate as nothing",
	  "{\"o\":{\"a\":1},\"l\":[1]}", "[{{o}}{{{l}}}]", "[]", NULL },
	{ "empty string is truthy", "{\"s\":\"\"}",
	  "{{#s}}yes{{/s}}{{^s}}no{{/s}}", "yes", NULL },
	{ "zero is truthy", "{\"z\":0}", "{{#z}}yes{{/z}}{{^z}}no{{/z}}",
	  "yes", NULL },
	{ "empty object is truthy", "{\"o\":{}}", "{{#o}}yes{{/o}}", "yes",
	  NULL },
	{ "true pushes itself", "{\"t\":true}", "{{#t}}{{.}}{{/t}}", "true",
	  NULL },
	{ "walking up the stack from a list",
	  "{\"x\":\"outer\",\"l\":[{\"y\":1},{\"x\":\"inner\"}]}",
	  "{{#l}}{{x}},{{/l}}", "outer,inner,", NULL },
	{ "dotted name through a list is a miss", "{\"l\":[{\"a\":1}]}",
	  "[{{l.a}}]", "[]", NULL },
	{ "delimiters set inside a section outlive it",
	  "{\"a\":true,\"x\":\"X\"}", "{{#a}}{{=<% %>=}}<%/a%><%x%>{{x}}",
	  "X{{x}}", NULL },
	{ "triple and ampersand with custom delimiters", "{\"x\":\"<\"}",
	  "{{=<% %>=}}<%{x}%><%&x%><%x%>", "<<&lt;", NULL },
	{ "one-character delimiters that are equal", "{\"x\":\"y\"}",
	  "{{=| |=}}|x||{x}|", "yy", NULL },
	{ "delimiters in a partial do not leak out", "{\"v\":\"V\"}",
	  "{{>p}}{{v}}", "VV", "{\"p\":\"{{=[ ]=}}[v]\"}" },
	{ "nested standalone partials add their indentation", "{}",
	  "    {{>outer}}\n", "    a\n      1\n      2\n    b\n",
	  "{\"outer\":\"a\\n  {{>inner}}\\nb\\n\",\"inner\":\"1\\n2\\n\"}" },
	{ "an inline partial inside an indented one is not indented", "{}",
	  "  {{>p}}\n", "  x1\n2y\n  z\n",
	  "{\"p\":\"x{{>q}}y\\nz\\n\",\"q\":\"1\\n2\"}" },
	{ "indentation is not applied inside interpolated values",
	  "{\"v\":\"1\\n2\"}", "  {{>p}}\n", "  <1\n2>\n  .\n",
	  "{\"p\":\"<{{v}}>\\n.\\n\"}" },
	{ "standalone sections inside an indented partial",
	  "{\"l\":[1,2]}", "  {{>p}}\n", "  1\n  2\n",
	  "{\"p\":\"{{#l}}\\n{{.}}\\n{{/l}}\\n\"}" },
	{ "two tags on a line are not standalone", "{\"a\":true}",
	  "{{#a}}{{/a}}\nx", "\nx", NULL },
	{ "CR without LF does not end a line", "{\"a\":true}",
	  "{{#a}}\r{{/a}}", "\r", NULL },
	{ "null data", "null", "[{{x}}{{.}}{{#x}}y{{/x}}{{^x}}n{{/x}}]",
	  "[n]", NULL },
};

/* A template, a substring its compile error must contain. */
static const struct {
	const char	*tpl;
	const char	*err;
} errors[] = {
	{ "x{{y", "t:1: unclosed tag '{{'" },
	{ "a\n{{{y}}\n", "t:2: unclosed tag '{{'" },
	{ "a\nb\n{{#s}}\nc", "t:3: section 's' is never closed" },
	{ "{{#a}}\n{{/b}}", "t:2: 'b' closes section 'a' opened on line 1" },
	{ "\n\n{{/a}}", "t:3: 'a' closes no open section" },
	{ "{{=<%=}}", "t:1: bad delimiter tag" },
	{ "{{= a b c =}}", "t:1: bad delimiter tag" },
	{ "{{=a =b=}}", "t:1: bad delimiter tag" },
	{ "{{= =}}", "t:1: bad delimiter tag" },
	{ "{{=aaaaaaaaaaaaaaaaa b=}}", "t:1: bad delimiter tag" },
	{ "\n{{=<% %>=}}\n<%x", "t:3: unclosed tag '<%'" },
	{ "{{}}", "t:1: empty tag" },
	{ "{{ }}", "t:1: empty tag" },
	{ "{{#}}{{/}}", "t:1: empty tag" },
	{ "{{>}}", "t:1: empty tag" },
	{ "{{a b}}", "t:1: bad name 'a b'" },
	{ "{{a..b}}", "t:1: bad name 'a..b'" },
	{ "{{.a}}", "t:1: bad name '.a'" },
	{ "{{a.}}", "t:1: bad name 'a.'" },
	{ "{{#a}}{{/a}}{{/a}}", "t:1: 'a' closes no open section" },
	{ "{{#a}}{{/}}", "t:1: empty tag" },
	{ "{{#a}}{{/a\nb}}", "t:1: bad name 'a\nb'" },
};

static json_t *
parse(const char *s)
{
	json_error_t e;
	json_t *v = json_loads(s, JSON_DECODE_ANY, &e);

	ck_assert_msg(v != NULL, "bad test JSON %s: %s", s, e.text);
	return v;
}

/* Renders c, partials included; the caller frees the result. */
static cd_buf
render_spec(const struct spec *c)
{
	cd_buf out = CD_BUF_INIT;
	cd_tpl_set *set = tpl_set_new();
	json_t *data = parse(c->data), *parts = NULL, *v;
	const char *name;
	char *err = NULL;
	cd_tpl *t;

	if (c->partials != NULL) {
		parts = parse(c->partials);
		json_object_foreach(parts, name, v) {
			t = tpl_compile(name, json_string_value(v),
			    json_string_length(v), &err);
			ck_assert_msg(t != NULL, "%s: %s", c->name, err);
			ck_assert_int_eq(tpl_set_add(set, t), 0);
		}
	}
	t = tpl_compile("test", c->tpl, strlen(c->tpl), &err);
	ck_assert_msg(t != NULL, "%s: %s", c->name, err);
	tpl_render(t, set, data, &out);
	tpl_free(t);
	tpl_set_free(set);
	json_decref(parts);
	json_decref(data);
	return out;
}

static void
check_spec(const char *module, const struct spec *c)
{
	cd_buf out = render_spec(c);

	ck_assert_msg(strcmp(buf_cstr(&out), c->want) == 0,
	    "%s: %s: got \"%s\", want \"%s\"", module, c->name,
	    buf_cstr(&out), c->want);
	buf_free(&out);
}

#define N(a)	(int)(sizeof(a) / sizeof((a)[0]))

START_TEST(spec_comments) { check_spec("comments", &comments[_i]); }
END_TEST
START_TEST(spec_interpolation)
{
	check_spec("interpolation", &interpolation[_i]);
}
END_TEST
START_TEST(spec_sections) { check_spec("sections", &sections[_i]); }
END_TEST
START_TEST(spec_inverted) { check_spec("inverted", &inverted[_i]); }
END_TEST
START_TEST(spec_partials) { check_spec("partials", &partials[_i]); }
END_TEST
START_TEST(spec_delimiters) { check_spec("delimiters", &delimiters[_i]); }
END_TEST

START_TEST(extra) { check_spec("extra", &extras[_i]); }
END_TEST

START_TEST(compile_error)
{
	char *err = NULL;
	cd_tpl *t;

	t = tpl_compile("t", errors[_i].tpl, strlen(errors[_i].tpl), &err);
	ck_assert_msg(t == NULL, "\"%s\" compiled", errors[_i].tpl);
	ck_assert_msg(err != NULL && strstr(err, errors[_i].err) != NULL,
	    "\"%s\": got \"%s\", want \"%s\"", errors[_i].tpl, err,
	    errors[_i].err);
	free(err);
	/* A caller that does not want the message may pass NULL. */
	ck_assert_ptr_null(tpl_compile("t", errors[_i].tpl,
	    strlen(errors[_i].tpl), NULL));
}
END_TEST

START_TEST(nesting_limit)
{
	cd_buf src = CD_BUF_INIT;
	char *err = NULL;
	cd_tpl *t;
	int i;

	for (i = 0; i < 32; i++)
		buf_puts(&src, "{{#a}}");
	for (i = 0; i < 32; i++)
		buf_puts(&src, "{{/a}}");
	t = tpl_compile("deep", src.data, src.len, &err);
	ck_assert_msg(t != NULL, "%s", err);
	tpl_free(t);
	buf_reset(&src);
	for (i = 0; i < 33; i++)
		buf_puts(&src, "{{#a}}\n");
	t = tpl_compile("deep", src.data, src.len, &err);
	ck_assert_ptr_null(t);
	ck_assert_str_eq(err, "deep:33: sections nested deeper than 32");
	free(err);
	buf_free(&src);
}
END_TEST

START_TEST(recursion_is_bounded)
{
	static const struct spec c = { "self", "{\"l\":[1,2]}", "{{>self}}",
	    "", "{\"self\":\"x{{>self}}\"}" };
	static const struct spec fan = { "fan", "{\"l\":[1,2]}", "{{>f}}",
	    "", "{\"f\":\"{{#l}}{{>f}}{{/l}}\"}" };
	cd_buf out = render_spec(&c);
	size_t i;

	ck_assert_uint_gt(out.len, 8);
	ck_assert_uint_le(out.len, 1000);
	for (i = 0; i < out.len; i++)
		ck_assert_int_eq(out.data[i], 'x');
	buf_free(&out);
	/* Two calls per level would be 2^64 without the step budget. */
	out = render_spec(&fan);
	ck_assert_uint_eq(out.len, 0);
	buf_free(&out);
}
END_TEST

/*
 * Found by the fuzzer: a standalone partial that includes itself twice,
 * with many lines, writes each line with 64 levels of indentation.  The
 * output budget stops it at 64 MiB where the step budget alone let it run
 * for minutes.
 */
START_TEST(indentation_is_budgeted)
{
	static const struct spec c = { "fan", "{}", "{{>self}}", "",
	    "{\"self\":\" {{>self}}\\n }c\\n\\n\\n\\n\\n}}Ac\\n\\n"
	    "\\n\\n\\n{{>self}}\\n\"}" };
	cd_buf out = render_spec(&c);

	ck_assert_uint_gt(out.len, 1 << 20);
	ck_assert_uint_le(out.len, (1 << 26) + (1 << 20));
	buf_free(&out);
}
END_TEST

START_TEST(render_appends_and_repeats)
{
	cd_buf out = CD_BUF_INIT;
	json_t *data = parse("{\"n\":\"<b>\"}");
	cd_tpl *t = tpl_compile("t", "[{{n}}]", 7, NULL);

	ck_assert_ptr_nonnull(t);
	buf_puts(&out, "pre");
	tpl_render(t, NULL, data, &out);
	tpl_render(t, NULL, data, &out);
	ck_assert_str_eq(buf_cstr(&out), "pre[&lt;b&gt;][&lt;b&gt;]");
	tpl_free(t);
	json_decref(data);
	buf_free(&out);
}
END_TEST

/* NULs in text and in values are output whole; a name cannot hold one. */
START_TEST(nul_bytes)
{
	static const char src[] = "a\0b{{x}}{{>p}}|{{{s}}}|{{s}}";
	static const char want[] = "a\0bX|a\0<|a\0&lt;";
	cd_buf out = CD_BUF_INIT;
	json_t *data = json_loads("{\"x\":\"X\",\"s\":\"a\\u0000<\"}",
	    JSON_ALLOW_NUL, NULL);
	cd_tpl *t = tpl_compile("t", src, sizeof(src) - 1, NULL);

	ck_assert_ptr_nonnull(data);
	ck_assert_ptr_nonnull(t);
	tpl_render(t, NULL, data, &out);	/* no set: partials are misses */
	ck_assert_uint_eq(out.len, sizeof(want) - 1);
	ck_assert(memcmp(out.data, want, sizeof(want) - 1) == 0);
	tpl_free(t);
	json_decref(data);
	buf_free(&out);
	ck_assert_ptr_null(tpl_compile("t", "{{a\0}}", 6, NULL));
}
END_TEST

START_TEST(set_replace_and_get)
{
	cd_tpl_set *s = tpl_set_new();
	cd_buf out = CD_BUF_INIT;
	const char *names[] = { "m", "b", "z", "a", "q" };
	size_t i;

	for (i = 0; i < 5; i++)
		ck_assert_int_eq(tpl_set_add(s,
		    tpl_compile(names[i], names[i], 1, NULL)), 0);
	ck_assert_int_eq(tpl_set_add(s, tpl_compile("b", "B2", 2, NULL)), 0);
	ck_assert_int_eq(tpl_set_add(s, NULL), -1);
	for (i = 0; i < 5; i++) {
		buf_reset(&out);
		ck_assert_ptr_nonnull(tpl_get(s, names[i]));
		tpl_render(tpl_get(s, names[i]), s, NULL, &out);
		ck_assert_str_eq(buf_cstr(&out),
		    strcmp(names[i], "b") == 0 ? "B2" : names[i]);
	}
	ck_assert_ptr_null(tpl_get(s, "c"));
	ck_assert_ptr_null(tpl_get(NULL, "a"));
	tpl_set_free(s);
	tpl_set_free(NULL);
	tpl_free(NULL);
	buf_free(&out);
}
END_TEST

static void
write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

static void
remove_dir(const char *dir, const char *const *names)
{
	char path[512];

	for (; *names != NULL; names++) {
		snprintf(path, sizeof(path), "%s/%s", dir, *names);
		unlink(path);
		rmdir(path);
	}
	rmdir(dir);
}

START_TEST(load_dir)
{
	static const char *const files[] = { "page.mustache", "head.mustache",
	    "notes.txt", ".mustache", "broken.mustache", "x.mustache", NULL };
	char dir[] = "/tmp/test_template.XXXXXX", want[600], *err = NULL;
	cd_buf out = CD_BUF_INIT;
	cd_tpl_set *s;
	json_t *data = parse("{\"title\":\"T&C\"}");

	ck_assert_ptr_nonnull(mkdtemp(dir));
	write_file(dir, "page.mustache", "<h1>\n  {{>head}}\n</h1>\n");
	write_file(dir, "head.mustache", "{{title}}\n");
	write_file(dir, "notes.txt", "{{#unclosed}}");
	write_file(dir, ".mustache", "{{#unclosed}}");
	s = tpl_load_dir(dir, &err);
	ck_assert_msg(s != NULL, "%s", err);
	ck_assert_ptr_nonnull(tpl_get(s, "page"));
	ck_assert_ptr_nonnull(tpl_get(s, "head"));
	ck_assert_ptr_null(tpl_get(s, "notes"));
	tpl_render(tpl_get(s, "page"), s, data, &out);
	ck_assert_str_eq(buf_cstr(&out), "<h1>\n  T&amp;C\n</h1>\n");
	tpl_set_free(s);

	/* One broken template fails the whole load, naming file and line. */
	write_file(dir, "broken.mustache", "ok\n{{#a}}\n");
	ck_assert_ptr_null(tpl_load_dir(dir, &err));
	snprintf(want, sizeof(want),
	    "%s/broken.mustache:2: section 'a' is never closed", dir);
	ck_assert_str_eq(err, want);
	free(err);
	unlink(strcat(strcpy(want, dir), "/broken.mustache"));

	/* So does a directory that only looks like a template. */
	ck_assert_int_eq(mkdir(strcat(strcpy(want, dir), "/x.mustache"), 0700),
	    0);
	ck_assert_ptr_null(tpl_load_dir(dir, &err));
	ck_assert_ptr_nonnull(strstr(err, "x.mustache: not a regular file"));
	free(err);

	remove_dir(dir, files);
	ck_assert_ptr_null(tpl_load_dir(dir, &err));
	ck_assert_ptr_nonnull(strstr(err, "No such file"));
	free(err);
	ck_assert_ptr_null(tpl_load_dir(dir, NULL));
	json_decref(data);
	buf_free(&out);
}
END_TEST

static Suite *
template_suite(void)
{
	Suite *s = suite_create("template");
	TCase *tc;

	tc = tcase_create("spec");
	tcase_add_loop_test(tc, spec_comments, 0, N(comments));
	tcase_add_loop_test(tc, spec_interpolation, 0, N(interpolation));
	tcase_add_loop_test(tc, spec_sections, 0, N(sections));
	tcase_add_loop_test(tc, spec_inverted, 0, N(inverted));
	tcase_add_loop_test(tc, spec_partials, 0, N(partials));
	tcase_add_loop_test(tc, spec_delimiters, 0, N(delimiters));
	suite_add_tcase(s, tc);

	tc = tcase_create("ours");
	/* indentation_is_budgeted renders up to its 64 MiB budget: on a
	   loaded machine that takes longer than Check's 4 s default. */
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, extra, 0, N(extras));
	tcase_add_loop_test(tc, compile_error, 0, N(errors));
	tcase_add_test(tc, nesting_limit);
	tcase_add_test(tc, recursion_is_bounded);
	tcase_add_test(tc, indentation_is_budgeted);
	tcase_add_test(tc, render_appends_and_repeats);
	tcase_add_test(tc, nul_bytes);
	tcase_add_test(tc, set_replace_and_get);
	tcase_add_test(tc, load_dir);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(template_suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
