/*
 * Numbers for people: counts with thousands separators and integer cents as
 * dollars, both in integer arithmetic only (money is never a float).
 */
#ifndef CD_FORMAT_H
#define CD_FORMAT_H

#include "buf.h"

void	 format_count(cd_buf *, long long);	/* 20833 → "20,833" */
void	 format_cents(cd_buf *, long long);	/* 4900 → "$49.00", -5 → "-$0.05" */
void	 format_bps(cd_buf *, long long);	/* 5000 → "50%", 3333 → "33.33%" */

#endif
