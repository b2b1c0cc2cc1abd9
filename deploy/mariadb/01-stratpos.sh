#!/bin/bash
# MariaDB warehouse initialisation, *sourced* by the official image's entrypoint on the first start
# (empty data directory), which provides docker_process_sql / mysql_note / mysql_error:
#   - the five stratpos schemas ({prefix}raw, staging, intermediate, marts, audit; SPEC §2),
#   - the pipeline's account: all privileges on those five schemas and nothing else,
#   - the BI account (SPEC §9): SELECT on {prefix}marts, nothing else — dashboards read, never write —
#     at the host STRATPOS_BI_HOST (required: `%` only when you set it; the BI tool of the compose file
#     connects from another container, so a name or pattern of the compose network, or %).
# Names and passwords come from the environment (deploy/.env), never from this file.

for var in STRATPOS_MYSQL_USER STRATPOS_MYSQL_PASSWORD STRATPOS_BI_USER STRATPOS_BI_PASSWORD; do
	value=${!var:-}
	# the values are spliced into SQL string literals below: no quotes or backslashes
	if [ -z "$value" ] || [[ $value == *[\'\"\`\\]* ]]; then
		mysql_error "$var must be set and must not contain quotes or backslashes"
	fi
done
bi_host=${STRATPOS_BI_HOST:-}
# the same rule as stratpos.bi (STRATPOS_BI_HOST): a host name, an address, or a pattern with %
if [ -z "$bi_host" ] || [[ ! $bi_host =~ ^[A-Za-z0-9_.%:-]+$ ]]; then
	mysql_error "STRATPOS_BI_HOST must be set to the BI tool's host, an address or a pattern with % (letters, digits, _ . % : -)"
fi
prefix=${STRATPOS_SCHEMA_PREFIX:-}
if [[ ! $prefix =~ ^[A-Za-z0-9_]*$ ]]; then
	mysql_error "STRATPOS_SCHEMA_PREFIX may hold only letters, digits and _"
fi

mysql_note "stratpos: schemas ${prefix}raw..${prefix}audit, users ${STRATPOS_MYSQL_USER} (pipeline) and ${STRATPOS_BI_USER}@${bi_host} (BI, read-only)"
docker_process_sql --database=mysql <<-EOSQL
	CREATE DATABASE IF NOT EXISTS \`${prefix}raw\`;
	CREATE DATABASE IF NOT EXISTS \`${prefix}staging\`;
	CREATE DATABASE IF NOT EXISTS \`${prefix}intermediate\`;
	CREATE DATABASE IF NOT EXISTS \`${prefix}marts\`;
	CREATE DATABASE IF NOT EXISTS \`${prefix}audit\`;

	CREATE USER IF NOT EXISTS '${STRATPOS_MYSQL_USER}'@'%' IDENTIFIED BY '${STRATPOS_MYSQL_PASSWORD}';
	GRANT ALL PRIVILEGES ON \`${prefix}raw\`.* TO '${STRATPOS_MYSQL_USER}'@'%';
	GRANT ALL PRIVILEGES ON \`${prefix}staging\`.* TO '${STRATPOS_MYSQL_USER}'@'%';
	GRANT ALL PRIVILEGES ON \`${prefix}intermediate\`.* TO '${STRATPOS_MYSQL_USER}'@'%';
	GRANT ALL PRIVILEGES ON \`${prefix}marts\`.* TO '${STRATPOS_MYSQL_USER}'@'%';
	GRANT ALL PRIVILEGES ON \`${prefix}audit\`.* TO '${STRATPOS_MYSQL_USER}'@'%';

	CREATE USER IF NOT EXISTS '${STRATPOS_BI_USER}'@'${bi_host}' IDENTIFIED BY '${STRATPOS_BI_PASSWORD}';
	GRANT SELECT ON \`${prefix}marts\`.* TO '${STRATPOS_BI_USER}'@'${bi_host}';
EOSQL
