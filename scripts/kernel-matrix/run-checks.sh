#!/bin/bash
# Runs the checks of a TSV file (name, timeout in seconds, shell command; one
# per line) one after the other in the current directory. For each, writes
# OUT/<name>.out (stdout and stderr) and OUT/<name>.rc ("<exit code> <seconds>"),
# and prints KM-BEGIN/KM-END markers. A check running past its timeout gets
# SIGTERM, then SIGKILL 10 s later (exit code 124 or 137).
set -u
tsv=$1
out=$2
mkdir -p "$out"
while IFS=$'\t' read -r name limit cmd; do
  [ -n "$name" ] || continue
  echo "KM-BEGIN $name"
  start=$(date +%s%N)
  timeout -k 10 "$limit" bash -c "$cmd" >"$out/$name.out" 2>&1 </dev/null
  rc=$?
  ms=$((($(date +%s%N) - start) / 1000000))
  echo "$rc $ms" >"$out/$name.rc"
  sync "$out/$name.out" "$out/$name.rc" 2>/dev/null
  echo "KM-END $name rc=$rc ms=$ms"
done <"$tsv"
