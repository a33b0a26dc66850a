/*
 * creditdesk-credits: balances and consumption.  Each product's routes live
 * in their own file; credits.c holds the route table.
 */
#ifndef CD_CREDITS_H
#define CD_CREDITS_H

#include "request.h"

cd_err	 live_help_summary(cd_req *);
cd_err	 live_help_book(cd_req *);
cd_err	 live_help_cancel(cd_req *);

cd_err	 voice_credits(cd_req *);
cd_err	 voice_start(cd_req *);
cd_err	 voice_end(cd_req *);

cd_err	 boost_packs(cd_req *);
cd_err	 credit_balance(cd_req *);
cd_err	 credit_transactions(cd_req *);

cd_err	 subscriptions_list(cd_req *);

#endif
