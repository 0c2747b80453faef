/**
 * The commented example plan written by `drplan init`: a small team's daily
 * pg_dump plan with its objectives, retention, verification, scenarios and
 * incident rules. Every field here passes validation.
 */
export const REFERENCE_PLAN = `# drplan.yaml: the disaster-recovery plan of one service.
# Values may use \${VAR} to read from the environment (write $\${ for a literal \${).
version: 1
service: shop

# Targets that \`drplan status\` compares with measured values.
# RTO: how long recovery may take. RPO: how much recent data may be lost.
objectives:
  rto:
    critical-services: 1h
    database: 2h
    full-system: 4h
    complete-rebuild: 24h
  rpo:
    database: 24h        # daily backups; WAL archiving brings this to seconds
    configuration: 1h
    user-data: 24h

databases:
  - name: shop
    # A libpq URI. Keep the password out of the file: it is read from the environment.
    url: postgres://shop:\${SHOP_DB_PASSWORD}@127.0.0.1:5432/shop
    objectives: { rpo: 24h, rto: 2h }

repositories:
  - name: local
    url: file:///var/backups/shop
    retention: { keepDays: 30 }
  - name: offsite
    # Credentials come from the AWS SDK chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, profiles).
    url: s3://shop-backups/drplan
    region: eu-central-1
    # For MinIO, Ceph or another S3-compatible store, also set:
    # endpoint: http://127.0.0.1:9000
    # forcePathStyle: true
    retention: { keepDays: 90, maxAgeDays: 90 }   # GDPR: nothing older than 90 days

backup:
  compression: zstd      # zstd (default), gzip or none
  compressionLevel: 3

# Continuous WAL archiving for point-in-time recovery. In postgresql.conf:
#   archive_mode = on
#   archive_command = 'drplan --config /etc/drplan/drplan.yaml wal push --database shop %p'
#   restore_command = 'drplan --config /etc/drplan/drplan.yaml wal fetch --database shop %f %p'
# With async, push queues each file in spoolDir and returns at once; a background
# uploader stores it. When maxQueue files wait, push fails and PostgreSQL keeps the file.
wal:
  async: false
  # spoolDir: /var/lib/drplan/spool
  maxQueue: 64

# Application data: directories of files, archived with tar.
files:
  - name: uploads
    paths: [/srv/shop/uploads]
    exclude: ["*.tmp"]
  - name: config
    paths: [/etc/shop]

# Schedules, in UTC unless a job names a time zone.
jobs:
  - { name: nightly-db, type: backup, database: shop, cron: "0 2 * * *" }
  - { name: nightly-files, type: files, fileset: uploads, cron: "0 3 * * *" }
  - { name: daily-verify, type: verify, database: shop, cron: "30 4 * * *" }
  - { name: weekly-restore-test, type: verify, database: shop, deep: true, cron: "0 5 * * 0" }
  - { name: monthly-full-restore, type: verify, database: shop, deep: true, cron: "0 6 1 * *" }
  - { name: daily-prune, type: prune, cron: "0 7 * * *" }

# Deep verification restores into a scratch database and runs these checks.
verify:
  checks:
    - name: orders exist
      sql: SELECT count(*) FROM orders
      minRows: 1

scenarios:
  - name: database-corruption
    title: Database corruption
    objective: database
    steps:
      - Stop writes to the database (set it read-only)
      - Verify the latest backup (drplan verify latest)
      - Restore side by side (drplan restore latest --target-database shop_restored)
      - Check the data, then restore in place (drplan restore latest --in-place)
  - name: complete-system-failure
    title: Complete system failure
    objective: full-system
    steps:
      - Redeploy the application and a new PostgreSQL server
      - Restore the database from S3 (drplan restore latest --in-place)
      - Run the health checks
      - Point DNS at the new system
  - name: data-breach
    title: Data breach
    objective: critical-services
    steps:
      - Enable maintenance mode
      - Rotate every secret
      - Preserve evidence for forensics
      - Notify the data protection authority within 72 hours (GDPR)
  - name: accidental-deletion
    title: Accidental deletion
    objective: database
    steps:
      - Set the database to read-only
      - Find the scope of the deletion in the audit log
      - Recover the affected tables (drplan restore latest --table NAME --target-database shop_recovery)
      - Copy the rows back, then set the database to read-write

incidents:
  severities:
    - { level: P0, description: Complete outage, respondWithin: 15m, notify: [everyone] }
    - { level: P1, description: Major degradation, respondWithin: 30m }
    - { level: P2, description: Minor issue, respondWithin: 2h }
    - { level: P3, description: Non-critical, respondWithin: 24h }
  channels: [status-page, email, chat]
  reportWithin: 24h
  maintenanceNotice: 7d

compliance:
  maxRetentionDays: 90   # GDPR
  # HIPAA asks for encrypted backups. drplan does not encrypt yet and rejects
  # "true" here; encrypt where backups are stored (S3 server-side encryption).
  encryption: false
  # HIPAA also asks for an audit trail of every restore, which drplan does not
  # keep yet; it rejects "true" here until it does.
  auditTrail: false
`;
