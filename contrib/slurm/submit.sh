#!/usr/bin/env bash
# Submit a scarscope study to Slurm: an N-task job array (one shard each) and a merge job
# that starts when every shard has succeeded.
#
#   contrib/slurm/submit.sh STUDY OUTBASE N [extra sbatch options...]
#
# STUDY and OUTBASE must be on a file system every node sees. Results end up in
# OUTBASE/merged (study.json, scars.csv, subjects/, overlays/). Set SCARSCOPE to the
# binary's path if it is not on the nodes' PATH. Prints the two job ids.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
study=$(realpath "${1:?usage: submit.sh STUDY OUTBASE N}")
mkdir -p "${2:?usage: submit.sh STUDY OUTBASE N}"
outbase=$(realpath "$2")
count=${3:?usage: submit.sh STUDY OUTBASE N}
shift 3

array=$(sbatch --parsable --array="1-$count" --chdir="$outbase" --export=ALL "$@" \
  "$here/shard.sbatch" "$study" "$outbase")
array=${array%%;*}
merge=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes \
  --chdir="$outbase" --export=ALL "$@" "$here/merge.sbatch" "$outbase" "$count")
merge=${merge%%;*}
echo "array job $array ($count shards), merge job $merge; results in $outbase/merged"
