/*
 * Chat push: a committed message is POSTed to the nchan publisher of every
 * machine's nginx, which hands it to the room's subscribers (EventSource,
 * WebSocket, long-poll; see nginx/creditdesk.conf.in).  A user's streams
 * are also ended on every machine when their sessions end (push_revoke).
 *
 * CD_CHAT_PUBLISH lists the publishers, comma-separated: "unix:<socket>"
 * (nginx's publisher socket, the local stack's way) or "http://host:port"
 * (a publisher on a private address).  Unset: the production socket,
 * unix:/run/creditdesk/publish/chat-publish.sock.  The list is read once per
 * child (push_init, or the first push); each target keeps one curl handle
 * for the child's whole life, and one curl multi handle keeps their
 * connections, so each is reused from one request to the next.
 *
 * The requests go out once the caller's answer has gone (req_after), and to
 * all publishers at once: a slow or hung machine never delays the caller,
 * and costs the child one timeout (PUSH_TIMEOUT_MS) however many machines
 * hang.
 *
 * Push is an optimisation, never the record: the message is already
 * committed, and GET …/messages?after= (catch-up and polling) lists it
 * whatever happens here, so a failure is logged and the send still succeeds.
 * Each event names the message before it ("after"), so a page whose
 * machine missed a push catches up at the next one.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "log.h"
#include "push.h"

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
static CURLM *multi;

/*
 * One request on its way, in the arena: a message POSTed to a room's
 * channel, or (body NULL) a DELETE that ends a channel's subscribers.
 */
struct push {
	char	path[64];
	char	*body;
	size_t	 len;
};
static int state;	/* push_init: 0 not yet, 1 ready, -1 failed */

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
push_init(void)
{
	const char *env = getenv("CD_CHAT_PUBLISH");
	char *list, *item, *save = NULL;

	if (state != 0)
		return state > 0 ? 0 : -1;
	state = -1;
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
	if (headers == NULL || (multi = curl_multi_init()) == NULL)
		return -1;
	state = 1;
	return 0;
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
	curl_easy_setopt(t->h, CURLOPT_USERAGENT, "creditdesk-push");
	curl_easy_setopt(t->h, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(t->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(t->h, CURLOPT_CONNECTTIMEOUT_MS, PUSH_TIMEOUT_MS);
	curl_easy_setopt(t->h, CURLOPT_TIMEOUT_MS, PUSH_TIMEOUT_MS);
	curl_easy_setopt(t->h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(t->h, CURLOPT_PRIVATE, t);	/* for finish_one */
	return t->h;
}

/* The publisher's name in log lines. */
static void
log_target(const struct target *t, const char *path, const char *what)
{
	log_warn("chat push %s%s%s: %s", t->socket ? "unix:" : "",
	    t->socket ? t->socket : t->base, path, what);
}

/* Adds p's request to t to the multi handle; false if it cannot. */
static bool
start_one(struct target *t, const struct push *p)
{
	CURL *h = target_handle(t);
	char url[512];		/* libcurl keeps a copy */

	if (h == NULL) {
		log_target(t, p->path, "cannot set up libcurl");
		return false;
	}
	snprintf(url, sizeof url, "%s%s", t->base, p->path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	if (p->body != NULL) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)p->len);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, p->body);
	} else {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
	}
	if (curl_multi_add_handle(multi, h) != CURLM_OK) {
		log_target(t, p->path, "cannot start the request");
		return false;
	}
	return true;
}

/*
 * What one request came to.  nchan answers a POST 201 (subscribers) or 202
 * (none), a DELETE 200 (its subscribers ended) or 404 (it had none).
 */
static void
finish_one(CURL *h, CURLcode rc, const struct push *p)
{
	struct target *t = NULL;
	long status = 0;
	char what[32];

	if (curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&t) != CURLE_OK || t == NULL)
		return;
	if (rc != CURLE_OK)
		log_target(t, p->path, curl_easy_strerror(rc));
	else if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status),
	    (status < 200 || status > 299) && !(p->body == NULL && status == 404)) {
		snprintf(what, sizeof what, "HTTP %ld", status);
		log_target(t, p->path, what);
	}
}

/* Every publisher at once; each transfer ends by PUSH_TIMEOUT_MS. */
static void
publish(void *arg)
{
	const struct push *p = arg;
	bool started[PUSH_MAX_TARGETS];
	int running = 0, left;
	CURLMsg *m;
	size_t i;

	for (i = 0; i < ntargets; i++)
		started[i] = start_one(&targets[i], p);
	do {
		if (curl_multi_perform(multi, &running) != CURLM_OK)
			break;
		if (running > 0 && curl_multi_poll(multi, NULL, 0,
		    (int)PUSH_TIMEOUT_MS, NULL) != CURLM_OK)
			break;
	} while (running > 0);
	while ((m = curl_multi_info_read(multi, &left)) != NULL)
		if (m->msg == CURLMSG_DONE)
			finish_one(m->easy_handle, m->data.result, p);
	for (i = 0; i < ntargets; i++)
		if (started[i])
			curl_multi_remove_handle(multi, targets[i].h);
}

/* Queues p (in r's arena) for every publisher once r's answer has gone. */
static void
send_after(cd_req *r, struct push *p)
{
	if (push_init() == 0 && ntargets > 0)
		req_after(r, publish, p);
}

void
push_message(cd_req *r, long long room, long long after, const json_t *message)
{
	struct push *p;
	json_t *event;
	char *body;

	if ((event = json_pack("{s:I,s:O}", "after", (json_int_t)after,
	    "message", message)) == NULL)
		return;
	body = json_dumps(event, JSON_COMPACT);
	json_decref(event);
	if (body == NULL)
		return;
	p = arena_alloc(r->arena, sizeof(*p));
	p->body = arena_strdup(r->arena, body);
	p->len = strlen(body);
	free(body);
	snprintf(p->path, sizeof p->path, "/internal/chat/publish/%lld", room);
	send_after(r, p);
}

void
push_revoke(cd_req *r, long long user_id)
{
	struct push *p = arena_alloc(r->arena, sizeof(*p));

	p->body = NULL;
	p->len = 0;
	snprintf(p->path, sizeof p->path, "/internal/chat/revoke/%lld", user_id);
	send_after(r, p);
}
