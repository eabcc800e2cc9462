-- Test fixture for sqlquery; {{schema}} is replaced by a unique schema name.
CREATE SCHEMA {{schema}};
CREATE TABLE {{schema}}.patients (
    id        integer PRIMARY KEY,
    nhs_no    text,
    surname   varchar(40),
    dob       date,
    seen      timestamptz,
    admitted  timestamp,
    weight    numeric(6,2),
    ratio     double precision,
    big       bigint,
    active    boolean,
    note      bytea
);
INSERT INTO {{schema}}.patients VALUES
    (1, '5002977278', 'Pennington', '1948-03-14', '2026-11-24 10:30:00.25+00', '2026-11-24 00:00:00', 61.50, 0.1, 9007199254740993, true, NULL),
    (2, NULL, 'O''Neil, Jr', NULL, NULL, '2026-11-24 08:15:00', NULL, -2.5e-7, NULL, false, NULL),
    (3, '7408594116', 'Zoë', '2001-01-23', NULL, NULL, 70, NULL, NULL, NULL, '\xff41'::bytea);
