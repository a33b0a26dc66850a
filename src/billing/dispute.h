/*
 * Disputed payments.  charge.dispute.created freezes what the payment
 * granted and is still unspent (the product's freeze hook: frozen units
 * cannot be spent), an inquiry's too.  charge.dispute.closed releases them
 * when the money stays with us (won, an inquiry's warning_closed,
 * prevented); when it is lost they are released and the payment is reversed
 * like a full refund (the product's reverse: never below what was used),
 * and what could not be taken back is recorded as the loss.  Each step is
 * one dispute_steps row (UNIQUE per dispute and step), plus the product's
 * own ledger or reversal rows, so redelivered events change nothing.
 * A dispute on an expert booking's payment marks the booking disputed (owed
 * to nobody), a close that keeps the money makes it owed again ('won'), lost
 * reverses the payment like a full refund (booking_disputed); its steps are
 * counted in cents.
 * Both take the dispute as retrieved from Stripe, with its charge (NULL
 * when Stripe has none): a subscription invoice's charge names the invoice
 * it paid, so no other call is needed to find the purchase.
 */
#ifndef CD_DISPUTE_H
#define CD_DISPUTE_H

#include <jansson.h>

#include "error.h"

cd_err	 dispute_opened(const json_t *dispute, const json_t *charge);
cd_err	 dispute_closed(const json_t *dispute, const json_t *charge);

#endif
