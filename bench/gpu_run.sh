#!/usr/bin/env bash
# Issue 29's GPU run, sized for one call of the device tool (at most 10 minutes, start-up not included):
# the ResNet-50 teacher as K fold models (with their out-of-fold probabilities), the MobileNetV2 distilled
# from it, and their figures, all from plain FER2013 class folders with torch and timm only.
#
#   On the device (device tool: command "bash bench/gpu_run.sh", carry [".data/fer2013.zip"], timeout_s 600;
#   .data/ is ignored through .git/info/exclude):
#     bash bench/gpu_run.sh
#   Back here:
#     python bench/models.py publish --source /work/.device/.../gpu     # RESULTS.md, results/*.json, teacher OOF
#
# Every step is resumable: runs live in $RUNS, which must be an ignored folder that is NOT a carried path (the device
# tool replaces a carried folder on every call, which wiped the first H200 run's fold model; an ignored, uncarried
# folder stays while the machine is warm): the script refuses a $RUNS under .data/ or one git does not ignore.
# On the GPU no file is kept per epoch (best and last only) and the resume state is written at most once a minute,
# so a kill loses at most that minute; a step that would overrun its deadline stops after a written state
# (exit 3). Running the script again continues where it stopped; finished steps are skipped.
# The epochs of each run are fitted to its share of the budget from a timed warm-up of the real training loop
# (validation and checkpoint writes included, 0.9 of the share; bench/models.py --seconds), and kept in the run
# folder so a resumed run keeps its schedule.
# What comes back is what fits the device tool's return limits (8 files, 16 MiB each): the figures (md,
# json), each run's curve, the teacher's OOF probabilities and the log; checkpoints stay on the machine.
#
# Knobs (environment): DATA, RUNS, OUT, DEVICE, BUDGET_S (training seconds for teacher + student),
# TEACHER_SHARE, FOLDS, ARCH, STEM, TEACHER_EPOCHS / STUDENT_EPOCHS (upper bounds), CROP, BATCH, LR, OPT, WD,
# EXTRA (more bench/models.py options, e.g. "--limit 64 --max-steps 2" for a smoke run).
set -uo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-.data/fer2013}
RUNS=${RUNS:-bench/runs/gpu-run}
OUT=${OUT:-$RUNS/out}
DEVICE=${DEVICE:-auto}
BUDGET_S=${BUDGET_S:-420}
TEACHER_SHARE=${TEACHER_SHARE:-0.6}
FOLDS=${FOLDS:-2}
ARCH=${ARCH:-resnet50}
STEM=${STEM:-2}  # the teacher's stem stride: 2 keeps a 3x3 final map at 44-48 px (timm's stock 4 leaves 2x2)
TEACHER_EPOCHS=${TEACHER_EPOCHS:-200}
STUDENT_EPOCHS=${STUDENT_EPOCHS:-150}
CROP=${CROP:-44}
BATCH=${BATCH:-256}
LR=${LR:-0.1}
OPT=${OPT:-sgd}
WD=${WD:-5e-4}
EXTRA=${EXTRA:-}
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1

runs_abs=$(realpath -m "$RUNS")
top=$(git rev-parse --show-toplevel 2>/dev/null || true)
if [ -n "$top" ] && [[ "$runs_abs/" == "$top/.data/"* ]]; then
  echo "gpu_run: RUNS=$RUNS lies under .data/, the carried data's folder: it would be replaced on the next call; use bench/runs/..." >&2
  exit 2
fi
if [ -n "$top" ] && [[ "$runs_abs" == "$top/"* ]] && ! git check-ignore -q "$RUNS"; then
  echo "gpu_run: RUNS=$RUNS is not ignored by git: the device tool copies it over on every call; use an ignored folder such as bench/runs/gpu-run" >&2
  exit 2
fi
mkdir -p "$OUT"
LOG="$OUT/gpu-run.log"
# The device takes the working tree and carried paths only: FER2013 travels as one zip (35,887 small files would
# count at disk-block size), made once here with
#   (cd ../shared/data && python3 -m zipfile -c "$OLDPWD/.data/fer2013.zip" fer2013/train fer2013/test)
if [ ! -d "$DATA/train" ] && [ -f "${DATA%/}.zip" ]; then
  "$PY" -m zipfile -e "${DATA%/}.zip" "$DATA" || { echo "gpu_run: cannot unpack ${DATA%/}.zip" | tee -a "$LOG"; exit 2; }
fi
started=$(date +%s)
teacher_s=$(awk -v b="$BUDGET_S" -v s="$TEACHER_SHARE" 'BEGIN { printf "%d", b * s }')
student_s=$((BUDGET_S - teacher_s))
echo "gpu_run: $(date -u +%FT%TZ), budget ${BUDGET_S}s (teacher ${teacher_s}s, student ${student_s}s), device $DEVICE" | tee -a "$LOG"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" 2>&1 | tee -a "$LOG"

common=(--data "$DATA" --runs "$RUNS" --device "$DEVICE" --random-crop "$CROP" --batch-size "$BATCH" --skip-int8 $EXTRA)
step() {  # step NAME DEADLINE ARGS...: run one resumable step; 3 = stopped at its deadline (state saved)
  local name=$1 deadline=$2; shift 2
  echo "== $name ($(date -u +%T))" | tee -a "$LOG"
  "$PY" bench/models.py "$@" --deadline "$deadline" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc" | tee -a "$LOG"
  return "$rc"
}

rc=0
step teacher $((started + teacher_s + 30)) train teacher "${common[@]}" --arch "$ARCH" --folds "$FOLDS" --epochs "$TEACHER_EPOCHS" \
  --seconds "$teacher_s" --optimizer "$OPT" --lr "$LR" --weight-decay "$WD" $( [ "$ARCH" = "${ARCH#fer_cnn}" ] && echo --stem-stride "$STEM" ) || rc=$?
if [ "$rc" -eq 0 ]; then
  step distilled $((started + BUDGET_S + 45)) train distilled "${common[@]}" --epochs "$STUDENT_EPOCHS" --seconds "$student_s" || rc=$?
fi
step report 0 report "${common[@]}" || true

# What comes back: figures, curves, OOF, log (the device returns at most 8 files).
kind=$(ls "$RUNS/results"/models-*.md 2>/dev/null | head -1 | sed -E 's/.*models-([a-z-]+)\.md/\1/')
kind=${kind:-gpu}
for f in "$RUNS/results/models-$kind.md" "$RUNS/results/models-$kind.json" "$RUNS/results/models-$kind-distilled.json" \
         "$RUNS/results/models-$kind-teacher-fold-0.json" "$RUNS/results/models-$kind-teacher-fold-1.json"; do
  [ -f "$f" ] && cp "$f" "$OUT/"
done
[ -f "$RUNS/runs/$kind/teacher/oof.npz" ] && cp "$RUNS/runs/$kind/teacher/oof.npz" "$OUT/teacher-oof-$kind.npz"
echo "bash bench/gpu_run.sh (BUDGET_S=$BUDGET_S FOLDS=$FOLDS ARCH=$ARCH STEM=$STEM CROP=$CROP BATCH=$BATCH LR=$LR OPT=$OPT WD=$WD $EXTRA)" > "$OUT/command.txt"
echo "gpu_run: done in $(( $(date +%s) - started )) s, exit $rc; files in $OUT" | tee -a "$LOG"
exit "$rc"
