/*
 * One row of a tool's report for people: its leading columns, then every
 * other member as key=value (creditdesk-check's findings, creditdesk-replay's
 * differences).
 */
#ifndef CD_PRINT_H
#define CD_PRINT_H

#include <jansson.h>

/* "  k1 [k2]" padded to w1 (and w2), then " key=value" for the rest; k2 may be NULL. */
void	 print_row(const json_t *row, const char *k1, int w1, const char *k2,
	    int w2);

#endif
