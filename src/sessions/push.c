/*
 * Chat push: a committed message is POSTed to the nchan publisher of every
 * machine's nginx, which hands it to the room's subscribers (EventSource,
 * WebSocket, long-poll; see nginx/creditdesk.conf.in).
 *
 * CD_CHAT_PUBLISH lists the publishers, comma-separated: "unix:<socket>"
 * (nginx's publisher socket, the local stack's way) or "http://host:port"
 * (a publisher on a private address).  Unset: the production socket,
 * unix:/run/creditdesk/publish/chat-publish.sock.  The list is read once, when the
 * child starts (chat_push_init); each target keeps one curl handle for the
 * child's whole life, so its connection is reused from one message to the
 * next.
 *
 * Push is an optimisation, never the record: the message is already
 * committed, and GET …/messages?after= (catch-up and polling) lists it
 * whatever happens here, so a failure is logged and the send still succeeds.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "log.h"
#include "sessions.h"

#define PUSH_DEFAULT "unix:/run/creditdesk/publish/chat-publish.sock"
#define PUSH_MAX_TARGETS 8
#define PUSH_TIMEOUT_MS 1000L

struct target {
	char	*socket;	/* unix socket path, or NULL for TCP */
	char	*base;		/* "http://host[:port]" */
	CURL	*h;
};

static struct target targets[PUSH_MAX_TARGETS];
static size_t ntargets;
static struct curl_slist *headers;

/* One entry of CD_CHAT_PUBLISH; false (and logged) if it is neither form. */
static bool
parse_target(const char *s, struct target *t)
{
	size_t n = strlen(s);

	while (n > 0 && s[n - 1] == '/')
		n--;
	if (strncmp(s, "unix:/", 6) == 0) {
		t->socket = strndup(s + 5, n - 5);
		t->base = strdup("http://localhost");
	} else if (strncmp(s, "http://", 7) == 0 && n > 7) {
		t->socket = NULL;
		t->base = strndup(s, n);
	} else {
		log_error("CD_CHAT_PUBLISH: '%s' is neither unix:/path nor http://host", s);
		return false;
	}
	return t->base != NULL;
}

int
chat_push_init(void)
{
	const char *env = getenv("CD_CHAT_PUBLISH");
	char *list, *item, *save = NULL;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (list = strdup(env != NULL && *env != '\0' ? env : PUSH_DEFAULT)) == NULL)
		return -1;
	for (item = strtok_r(list, ", ", &save); item != NULL &&
	    ntargets < PUSH_MAX_TARGETS; item = strtok_r(NULL, ", ", &save))
		if (parse_target(item, &targets[ntargets]))
			targets[ntargets++].h = NULL;
	free(list);
	headers = curl_slist_append(NULL, "Content-Type: application/json");
	/* Never wait for "100 Continue" on a longer message. */
	headers = curl_slist_append(headers, "Expect:");
	return headers == NULL ? -1 : 0;
}

static size_t
discard(char *p, size_t size, size_t n, void *ud)
{
	return size * n;
}

/* The target's handle, made once with everything but the URL and body. */
static CURL *
target_handle(struct target *t)
{
	if (t->h != NULL || (t->h = curl_easy_init()) == NULL)
		return t->h;
	if (t->socket != NULL)
		curl_easy_setopt(t->h, CURLOPT_UNIX_SOCKET_PATH, t->socket);
	curl_easy_setopt(t->h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(t->h, CURLOPT_USERAGENT, "creditdesk-sessions");
	curl_easy_setopt(t->h, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(t->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(t->h, CURLOPT_CONNECTTIMEOUT_MS, PUSH_TIMEOUT_MS);
	curl_easy_setopt(t->h, CURLOPT_TIMEOUT_MS, PUSH_TIMEOUT_MS);
	curl_easy_setopt(t->h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(t->h, CURLOPT_POST, 1L);
	return t->h;
}

/* One POST to one publisher; nchan answers 201 (subscribers) or 202 (none). */
static void
publish_one(struct target *t, const char *path, const char *body, size_t len)
{
	CURL *h = target_handle(t);
	char url[512];
	long status = 0;
	CURLcode rc;

	if (h == NULL) {
		log_error("chat push %s: cannot set up libcurl", t->base);
		return;
	}
	snprintf(url, sizeof url, "%s%s", t->base, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)len);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	if ((rc = curl_easy_perform(h)) != CURLE_OK)
		log_warn("chat push %s%s%s: %s", t->socket ? "unix:" : "",
		    t->socket ? t->socket : t->base, path, curl_easy_strerror(rc));
	else if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status),
	    status < 200 || status > 299)
		log_warn("chat push %s%s%s: HTTP %ld", t->socket ? "unix:" : "",
		    t->socket ? t->socket : t->base, path, status);
}

void
chat_push(long long session, const json_t *message)
{
	char path[64], *body;
	size_t i, len;

	if (ntargets == 0 ||
	    (body = json_dumps(message, JSON_COMPACT)) == NULL)
		return;
	len = strlen(body);
	snprintf(path, sizeof path, "/internal/chat/publish/%lld", session);
	for (i = 0; i < ntargets; i++)
		publish_one(&targets[i], path, body, len);
	free(body);
}
