/*
 * The check on two connections at once: a child process proves the
 * ledger invariants (a pass over every ledger row each) while this process
 * proves the others, so a large book takes about as long as its longest
 * half.  The child sends its findings and counts back as one JSON object
 * on a pipe; they are merged in the order of invariants[], so the result
 * is exactly that of running every invariant in turn.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "invariants.h"
#include "log.h"

/* The child: its own connection, the ledger part, the result on fd. */
static void
child(int fd)
{
	json_t *findings = json_array(), *counts = json_array(), *out;
	int rc;

	if (db_open() != CD_OK ||
	    invariants_run_part(NULL, INV_LEDGER, findings, counts) != CD_OK)
		_exit(2);
	out = json_pack("{s:o,s:o}", "findings", findings, "counts", counts);
	rc = json_dumpfd(out, fd, JSON_COMPACT) == 0 ? 0 : 2;
	db_close();
	_exit(rc);
}

/* Appends the items of from whose "check" is code, in their order. */
static void
take(json_t *to, const json_t *from, const char *code)
{
	json_t *item;
	size_t i;

	json_array_foreach(from, i, item)
		if (strcmp(jstr(item, "check") ?: "", code) == 0)
			json_array_append(to, item);
}

static void
merge(const json_t *a, const json_t *b, const char *key, json_t *to)
{
	size_t i;

	for (i = 0; i < ninvariants; i++) {
		take(to, json_object_get(a, key), invariants[i].code);
		take(to, json_object_get(b, key), invariants[i].code);
	}
}

cd_err
invariants_run_parallel(const char *stripe_json, json_t *findings,
    json_t *counts)
{
	json_t *mine, *theirs;
	int fd[2], status = 0;
	cd_err err;
	pid_t pid;

	if (pipe(fd) != 0 || (pid = fork()) < 0) {
		log_error("check: cannot start the ledger part (%m)");
		return CD_INTERNAL;
	}
	if (pid == 0) {
		close(fd[0]);
		child(fd[1]);
	}
	close(fd[1]);
	mine = json_pack("{s:o,s:o}", "findings", json_array(), "counts", json_array());
	if ((err = db_open()) == CD_OK)
		err = invariants_run_part(stripe_json, INV_REST,
		    json_object_get(mine, "findings"), json_object_get(mine, "counts"));
	theirs = json_loadfd(fd[0], 0, NULL);
	close(fd[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0 || theirs == NULL) {
		log_error("check: the ledger part could not be evaluated");
		if (err == CD_OK)
			err = CD_DB;
	}
	if (err == CD_OK) {
		merge(theirs, mine, "findings", findings);
		merge(theirs, mine, "counts", counts);
	}
	json_decref(mine);
	json_decref(theirs);
	return err;
}
