/*
 * One line per event on stderr: "<program>[pid] LEVEL message".
 */
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "log.h"

static const char *progname = "creditdesk";

void
log_init(const char *program)
{
	progname = program;
	setvbuf(stderr, NULL, _IOLBF, 0);
}

static void
vlog(const char *level, const char *fmt, va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(stderr, "%s[%d] %s %s\n", progname, (int)getpid(), level, line);
}

#define DEFINE_LOG(name, level)				\
void							\
name(const char *fmt, ...)				\
{							\
	va_list ap;					\
	va_start(ap, fmt);				\
	vlog(level, fmt, ap);				\
	va_end(ap);					\
}

DEFINE_LOG(log_info, "info")
DEFINE_LOG(log_warn, "warn")
DEFINE_LOG(log_error, "error")
