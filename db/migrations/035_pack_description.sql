-- A boost pack without a bonus is "Quick Boost: 10,417 Pilot Credits", no
-- longer "... (includes 0 bonus)" (pack_description in
-- src/billing/product_boost_pack.c).  The ledger rows already written say
-- the same in the new words, so that the replay of the books, which writes
-- them anew, finds no difference; only the text changes, never an amount.
UPDATE credit_transactions
   SET description = LEFT(description,
                          CHAR_LENGTH(description) - CHAR_LENGTH(' (includes 0 bonus)'))
 WHERE activity_type = 'boost_pack_purchase'
   AND description LIKE '% Pilot Credits (includes 0 bonus)';
