-- Lectern's Action/Trigger event definitions for Evergreen: one per hook,
-- each with the CallHTTP reactor and a template from templates/.
--
-- Run with psql from this directory, as the Evergreen database owner:
--
--   psql -v owner=1 -v url="'https://lectern.example.org'" \
--        -v token="'lct_…'" -f install.sql evergreen
--
-- `owner` is the org unit the definitions belong to (1, the consortium,
-- covers every library below it). `url` and `token` are Perl string
-- literals, as event_params values are evaluated as Perl: keep the inner
-- single quotes. The token is one made with
-- `lectern staff add evergreen --role ils`.
--
-- The definitions start inactive; check them in the staff client
-- (Administration > Local Administration > Notifications / Action
-- Triggers) and activate them there.

\set ON_ERROR_STOP on
\set checkout_tt `cat templates/checkout.tt`
\set checkin_tt `cat templates/checkin.tt`
\set due_tt `cat templates/checkout.due.tt`
\set hold_tt `cat templates/hold.available.tt`

BEGIN;

INSERT INTO action_trigger.event_definition
    (active, owner, name, hook, validator, reactor, delay, delay_field, max_delay, template)
VALUES
    (FALSE, :owner, 'Lectern: checkout', 'checkout', 'NOOP_True', 'CallHTTP',
        '00:00:00', NULL, NULL, :'checkout_tt'),
    (FALSE, :owner, 'Lectern: checkin', 'checkin', 'NOOP_True', 'CallHTTP',
        '00:00:00', NULL, NULL, :'checkin_tt'),
    -- Passive: the trigger runner finds circulations due today.
    (FALSE, :owner, 'Lectern: checkout due', 'checkout.due', 'CircIsOpen', 'CallHTTP',
        '00:00:00', 'due_date', '1 day', :'due_tt'),
    (FALSE, :owner, 'Lectern: hold available', 'hold.available', 'HoldIsAvailable', 'CallHTTP',
        '00:00:00', 'shelf_time', NULL, :'hold_tt');

-- What each template reads: the patron, the copy (its barcode and id for
-- the title) and, for holds, the pickup library.
INSERT INTO action_trigger.environment (event_def, path)
SELECT d.id, p.path
FROM action_trigger.event_definition d
CROSS JOIN (VALUES ('usr'), ('target_copy')) AS p (path)
WHERE d.owner = :owner AND d.name IN ('Lectern: checkout', 'Lectern: checkin', 'Lectern: checkout due');

INSERT INTO action_trigger.environment (event_def, path)
SELECT d.id, p.path
FROM action_trigger.event_definition d
CROSS JOIN (VALUES ('usr'), ('current_copy'), ('pickup_lib')) AS p (path)
WHERE d.owner = :owner AND d.name = 'Lectern: hold available';

-- Where to send, and the token: Perl expressions, as Evergreen evaluates
-- every event parameter.
INSERT INTO action_trigger.event_params (event_def, param, value)
SELECT d.id, p.param, p.value
FROM action_trigger.event_definition d
CROSS JOIN (VALUES ('lectern_url', :'url'), ('lectern_token', :'token')) AS p (param, value)
WHERE d.owner = :owner AND d.name LIKE 'Lectern: %';

COMMIT;
