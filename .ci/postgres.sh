#!/usr/bin/env bash
# Start a local PostgreSQL for the catalogue's PostgreSQL tests and print its SQLAlchemy URL.
# Best effort: prints nothing (and CI runs the SQLite suite only) where no server can be had.
set -u
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || exit 0
  [ "$(id -u)" = 0 ] || exit 0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >/dev/null 2>&1 || exit 0
fi
version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
[ -n "$version" ] || exit 0
pg_ctlcluster "$version" main start >/dev/null 2>&1 || true
for _ in $(seq 1 20); do
  su postgres -c "psql -qAtc 'select 1'" >/dev/null 2>&1 && break
  sleep 0.5
done
su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'sdhub-ci'\"" >/dev/null 2>&1 || exit 0
su postgres -c "psql -qAtc \"SELECT 1 FROM pg_database WHERE datname='sdhub_test'\"" | grep -q 1 \
  || su postgres -c "psql -qc 'CREATE DATABASE sdhub_test'" >/dev/null 2>&1 || exit 0
echo "postgresql+psycopg://postgres:sdhub-ci@127.0.0.1:5432/sdhub_test"
