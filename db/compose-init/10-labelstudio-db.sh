#!/bin/sh
# Label Studio keeps its own database on the ledger's server, under a role of its own: it can read and
# change neither the ledger's tables nor its password. Run once by the postgres image on a fresh volume.
set -eu
: "${LABEL_STUDIO_DB_PASSWORD:?set LABEL_STUDIO_DB_PASSWORD in .env}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -v pw="$LABEL_STUDIO_DB_PASSWORD" -v ledger="$POSTGRES_DB" <<'SQL'
CREATE ROLE labelstudio LOGIN PASSWORD :'pw';
CREATE DATABASE labelstudio OWNER labelstudio;
REVOKE ALL ON DATABASE :"ledger" FROM PUBLIC;
SQL
