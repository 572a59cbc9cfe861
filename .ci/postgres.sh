#!/usr/bin/env bash
# Start a local PostgreSQL (Debian's package) for the catalogue's PostgreSQL tests and print its SQLAlchemy URL.
# Installs the server where it is missing. Exits non-zero, saying why on stderr, when no server can be had:
# CI runs the catalogue suite on both databases, so a missing PostgreSQL is a failure, not a skip.
set -u
fail() { echo "postgres.sh: $*" >&2; exit 1; }
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || fail "pg_ctlcluster is missing and there is no apt-get to install postgresql"
  [ "$(id -u)" = 0 ] || fail "pg_ctlcluster is missing and installing postgresql needs root"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >/dev/null 2>&1 \
    || fail "apt-get install postgresql failed"
fi
version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
[ -n "$version" ] || fail "no cluster under /etc/postgresql after installing the server"
pg_ctlcluster "$version" main start >/dev/null 2>&1 || true
ready=
for _ in $(seq 1 40); do
  if su postgres -c "psql -qAtc 'select 1'" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.5
done
[ -n "$ready" ] || fail "PostgreSQL $version did not accept connections within 20 s"
su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'sdhub-ci'\"" >/dev/null 2>&1 || fail "could not set the postgres password"
su postgres -c "psql -qAtc \"SELECT 1 FROM pg_database WHERE datname='sdhub_test'\"" | grep -q 1 \
  || su postgres -c "psql -qc 'CREATE DATABASE sdhub_test'" >/dev/null 2>&1 || fail "could not create database sdhub_test"
echo "postgresql+psycopg://postgres:sdhub-ci@127.0.0.1:5432/sdhub_test"
