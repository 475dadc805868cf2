-- A used or expired one-time token keeps only its id, account, status and
-- expiry (spec §5): tombstones written before this release also held the
-- cardholder's name, BIN, last four digits, expiry and contact details.
UPDATE vault_records SET card_name = '', card_scheme = '', card_bin = '', card_last4 = '', card_fingerprint = '',
 expire_month = 0, expire_year = 0, address_line1 = '', address_line2 = '', address_line3 = '', address_city = '',
 address_state = '', address_postcode = '', address_country = '', first_name = '', last_name = '', email = '',
 phone = '', gateway_id = ''
 WHERE kind = 'one_time' AND status <> 'active';
