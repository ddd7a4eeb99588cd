#!/usr/bin/env bash
# backup.sh: archive a data directory to a local target (ScriptMesh example).
# Params (declared in the manifest; they arrive as environment variables):
#   source    directory to archive (default: a small demo directory created on first run)
#   target    local directory or file:// URL (default: $SCRIPTMESH_DATA_DIR/backups
#             or /tmp/scriptmesh-backups)
#   compress  true|false: gzip the archive (default true)
#   level     gzip level 1, 5 or 9 (default 5)
set -euo pipefail

default_root="${SCRIPTMESH_DATA_DIR:-/tmp/scriptmesh-demo}"
SOURCE="${source:-$default_root/data}"
if [[ -z "${source:-}" && ! -d "$SOURCE" ]]; then
  mkdir -p "$SOURCE"
  echo "demo data created $(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$SOURCE/README.txt"
fi
if [[ ! -d "$SOURCE" ]]; then
  echo "source directory not found: $SOURCE" >&2
  exit 2
fi

if [[ -n "${SCRIPTMESH_DATA_DIR:-}" ]]; then
  TARGET="${target:-$SCRIPTMESH_DATA_DIR/backups}"
else
  TARGET="${target:-/tmp/scriptmesh-backups}"
fi
case "$TARGET" in
  file://*) TARGET_DIR="${TARGET#file://}" ;;
  *://*) echo "unsupported target (only local paths and file:// URLs): $TARGET" >&2; exit 2 ;;
  *) TARGET_DIR="$TARGET" ;;
esac
mkdir -p -- "$TARGET_DIR"

TIMESTAMP="$(date -u +%Y%m%d_%H%M%S)"
if [[ "${compress:-true}" == "true" ]]; then
  ARCHIVE="$TARGET_DIR/backup_${TIMESTAMP}_$$.tar.gz"
  echo "Archiving $SOURCE to $ARCHIVE (gzip -${level:-5}) ..."
  tar -cf - -C "$(dirname "$SOURCE")" "$(basename "$SOURCE")" | gzip "-${level:-5}" > "$ARCHIVE"
else
  ARCHIVE="$TARGET_DIR/backup_${TIMESTAMP}_$$.tar"
  echo "Archiving $SOURCE to $ARCHIVE ..."
  tar -cf "$ARCHIVE" -C "$(dirname "$SOURCE")" "$(basename "$SOURCE")"
fi
SIZE="$(du -h "$ARCHIVE" | cut -f1)"
echo "Backup complete. ${SIZE} archived to ${TARGET}"
