"""The GPU campaign's plumbing, without running any real stage: SKIP passes
over stages without marking them done, a spent budget stops before a stage
starts, a stage resumed over calls keeps each call's log, the ledger sums
each stage's seconds over its calls, every stage's command parses, and a
damaged state archive never replaces the kept one."""

import os
import pathlib
import shlex
import shutil
import subprocess

from command_parser import run_parser
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _campaign(script, tmp_path, skip, budget_s):
  env = dict(os.environ, SMOKE='1', SKIP=' '.join(skip),
             BUDGET_S=str(budget_s))
  return subprocess.run(
      ['bash', f'benchmarks/{script}', str(tmp_path / 'work'),
       str(tmp_path / 'out')], cwd=ROOT, env=env, capture_output=True,
      text=True, timeout=60)


@pytest.mark.parametrize('script, first, last, count', [
    ('gpu_campaign.sh', 'bench_a', 'table1', 13),
    ('gpu_beyond.sh', 'cifar10_strong_zca', 'cifar10_strong_zca_standard', 2),
])
def test_skip_passes_over_stages_and_a_spent_budget_stops_before_each(
    tmp_path, script, first, last, count):
  # With no budget every stage not skipped stops the call (exit 75) before
  # it starts; skipping the stage it names moves on to the next one.
  skipped = []
  while True:
    result = _campaign(script, tmp_path, skipped, budget_s=0)
    if result.returncode != 75:
      break
    assert 'budget spent; run again to resume at stage' in result.stdout
    name = result.stdout.split('resume at stage ')[-1].split()[0]
    assert name not in skipped, result.stdout
    skipped.append(name)
  assert result.returncode == 0, result.stdout + result.stderr
  assert skipped[0] == first and skipped[-1] == last, skipped
  assert len(skipped) == count, skipped
  assert ('every stage done but those skipped: ' + ' '.join(skipped)
          in result.stdout)
  # A name that matches no stage is said, not silently ignored.
  result = _campaign(script, tmp_path, skipped + ['no_such_stage'], 0)
  assert result.returncode == 0
  assert result.stderr == (
      'campaign: SKIP names no stage of this script: no_such_stage\n')
  # No stage ran, in any of these calls.
  assert not list((tmp_path / 'work' / 'done').iterdir())
  assert not list((tmp_path / 'work' / 'logs').iterdir())


def _call_stages(tmp_path, *commands):
  """One call of a campaign with stages s1, s2, ... running `commands`, under
  gpu_campaign.sh's shell options."""
  stages = '; '.join(f'stage s{i} bash -c {shlex.quote(c)}'
                     for i, c in enumerate(commands, 1))
  script = ('set -uo pipefail; source benchmarks/campaign_lib.sh; '
            f'campaign_init test.sh {tmp_path}/work {tmp_path}/out; '
            f'{stages}; campaign_finish')
  return subprocess.run(['bash', '-c', script], cwd=ROOT,
                        capture_output=True, text=True, timeout=60)


def test_a_stage_resumed_over_calls_keeps_each_calls_log(tmp_path):
  # A stage cut by the budget (timeout's exit 124) stops the call with 75;
  # the next call runs it again and its log keeps both calls' output.
  first = _call_stages(tmp_path, 'echo first call; exit 124')
  assert first.returncode == 75, first.stdout + first.stderr
  assert not (tmp_path / 'work' / 'done' / 's1').exists()
  second = _call_stages(tmp_path, 'echo second call')
  assert second.returncode == 0, second.stdout + second.stderr
  assert (tmp_path / 'work' / 'done' / 's1').exists()
  log = (tmp_path / 'work' / 'logs' / 's1.log').read_text().splitlines()
  assert [l for l in log if not l.startswith('campaign: call of ')] == [
      'first call', 'second call']
  assert sum(l.startswith('campaign: call of ') for l in log) == 2
  assert (tmp_path / 'out' / 's1.log').read_text().splitlines() == log


def test_the_ledger_sums_each_stages_seconds_over_its_calls(tmp_path):
  assert _call_stages(tmp_path, 'sleep 1; exit 124').returncode == 75
  assert _call_stages(tmp_path, 'true', 'true').returncode == 0
  done = _call_stages(tmp_path, 'true', 'true')  # Both done: no lines.
  assert done.returncode == 0, done.stdout + done.stderr
  ledger = [l.split('\t') for l in
            (tmp_path / 'out' / 'seconds.tsv').read_text().splitlines()]
  assert [(name, rc) for name, _, _, rc in ledger] == [
      ('s1', '124'), ('s1', '0'), ('s2', '0')]
  assert int(ledger[0][2]) >= 1  # The first call slept a second.
  s1 = int(ledger[0][2]) + int(ledger[1][2])
  s2 = int(ledger[2][2])
  assert (tmp_path / 'out' / 'seconds.txt').read_text().splitlines() == [
      f's1\t{s1} s\t2 call(s)', f's2\t{s2} s\t1 call(s)',
      f'all\t{s1 + s2} s']


def _stage_commands(script, tmp_path, smoke):
  """{stage: (module, argv)} of every stage a DRY_RUN call would run."""
  env = dict(os.environ, DRY_RUN='1', SMOKE=smoke, SKIP='')
  result = subprocess.run(
      ['bash', f'benchmarks/{script}', str(tmp_path / 'work'),
       str(tmp_path / 'out')], cwd=ROOT, env=env, capture_output=True,
      text=True, timeout=60)
  assert result.returncode == 0, result.stdout + result.stderr
  assert result.stdout.splitlines()[-1] == 'campaign: dry run; nothing run'
  commands = {}
  for line in result.stdout.splitlines():
    if line.startswith('campaign: would run '):
      name, command = line.removeprefix('campaign: would run ').split(': ', 1)
      argv = shlex.split(command)
      assert argv[0] == 'python', argv
      if argv[1] == '-m':  # python -m experiments.X ...
        commands[name] = (argv[2], argv[3:])
      else:  # python benchmarks/X.py ...
        commands[name] = (argv[1].removesuffix('.py').replace('/', '.'),
                          argv[2:])
  assert not list((tmp_path / 'work' / 'done').iterdir())  # Nothing ran.
  return commands


def test_every_stage_command_parses(tmp_path):
  # A misspelt flag or config field in a stage would otherwise surface only
  # on a lent GPU, minutes into its rare budget. One parser process for all.
  commands = {}
  for smoke, count in (('0', 17), ('1', 15)):
    found = {}
    for script in ('gpu_campaign.sh', 'gpu_beyond.sh'):
      found.update(_stage_commands(script, tmp_path / smoke, smoke))
    assert len(found) == count, sorted(found)
    commands.update({f'{name} (SMOKE={smoke})': c for name, c in found.items()})
  # Controls: a bad value of a benchmark's flag and a misspelt config field
  # of a stage's command are caught.
  module, argv = commands['bench_a (SMOKE=0)']
  table1_module, table1_argv = commands['table1 (SMOKE=0)']
  controls = [(module, argv[:-1] + ['e']),
              (table1_module, table1_argv + ['--config.mnist.fixed.no_such=1'])]
  errors = run_parser(controls + list(commands.values()))
  assert errors[0] is not None and 'setting' in errors[0], errors[0]
  assert errors[1] is not None and 'no_such' in errors[1], errors[1]
  broken = [f'{name}: {module} {shlex.join(argv)}\n    {error}'
            for (name, (module, argv)), error in
            zip(commands.items(), errors[2:]) if error is not None]
  assert not broken, '\n'.join(['stages that do not parse:'] + broken)


def test_a_script_without_its_two_folders_says_how_to_call_it():
  for script in ('gpu_campaign.sh', 'gpu_beyond.sh'):
    result = subprocess.run(['bash', f'benchmarks/{script}'], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == f'usage: bash benchmarks/{script} WORKDIR OUTDIR\n'


KEPT = b'the state kept from the last call'


def _pack(tmp_path, *args):
  """campaign_pack.sh ARGS with a kept state in tmp_path: (result, kept)."""
  kept = tmp_path / 'state' / 'campaign.tgz'
  kept.parent.mkdir(exist_ok=True)
  kept.write_bytes(KEPT)
  result = subprocess.run(
      ['bash', 'benchmarks/campaign_pack.sh', *map(str, args)], cwd=ROOT,
      env=dict(os.environ, CAMPAIGN_STATE=str(kept)), capture_output=True,
      text=True, timeout=60)
  return result, kept


@pytest.mark.parametrize('kind', ['cut off', 'no work/'])
def test_pack_refuses_a_damaged_archive_and_keeps_the_saved_state(tmp_path,
                                                                  kind):
  damaged = tmp_path / 'campaign.tgz'
  if kind == 'cut off':
    damaged.write_bytes(b'cut off mid-transfer')
  else:  # A readable archive, but not of a campaign's state.
    (tmp_path / 'other').mkdir()
    subprocess.run(['tar', 'czf', str(damaged), '-C', str(tmp_path),
                    'other'], check=True)
  result, kept = _pack(tmp_path, damaged)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      f'campaign_pack: {damaged} is not a campaign state (.tgz of work/); '
      'kept state unchanged']
  assert kept.read_bytes() == KEPT


def _checkout_of_the_pack_scripts(tmp_path):
  """A folder with benchmarks/campaign_pack.sh and campaign_lib.sh, as a
  checkout of its own (the scripts find their root from their path)."""
  repo = tmp_path / 'repo'
  (repo / 'benchmarks').mkdir(parents=True)
  for name in ('campaign_pack.sh', 'campaign_lib.sh'):
    (repo / 'benchmarks' / name).write_text(
        (ROOT / 'benchmarks' / name).read_text())
  return repo


def test_a_returned_state_round_trips_and_the_one_it_replaces_is_kept(
    tmp_path):
  repo = _checkout_of_the_pack_scripts(tmp_path)
  work = repo / '.campaign' / 'work'
  (work / 'done').mkdir(parents=True)
  (work / 'done' / 'bench_a').touch()
  for i in range(300):  # Enough entries that a listing cut short shows.
    (work / 'logs').mkdir(exist_ok=True)
    (work / 'logs' / f'stage{i}.log').write_text(f'log {i}\n')
  out = tmp_path / 'out'
  out.mkdir()
  result = subprocess.run(['bash', 'benchmarks/campaign_pack.sh', '--return',
                           str(out)], cwd=repo, capture_output=True,
                          text=True, timeout=60)
  assert result.returncode == 0, result.stderr
  parts = sorted(str(p) for p in out.iterdir())
  assert [os.path.basename(p) for p in parts] == ['campaign.tgz.00']

  # The next session: a fresh .campaign (data and the wheel already there).
  shutil.rmtree(repo / '.campaign')
  (repo / '.campaign' / 'wheels').mkdir(parents=True)
  (repo / '.campaign' / 'wheels' / 'ml_collections-0-py3-none-any.whl').touch()
  data = tmp_path / 'data'
  for name in ('mnist', 'cifar10', 'usps'):
    (data / name).mkdir(parents=True)
  kept = tmp_path / 'state' / 'campaign.tgz'
  kept.parent.mkdir()
  kept.write_bytes(KEPT)
  result = subprocess.run(
      ['bash', 'benchmarks/campaign_pack.sh', *parts], cwd=repo,
      env=dict(os.environ, CAMPAIGN_STATE=str(kept),
               DDISTILL_DATA_DIR=str(data)),
      capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stderr
  assert 'stages done: bench_a' in result.stdout
  assert (kept.parent / 'campaign.tgz.previous').read_bytes() == KEPT
  assert (work / 'logs' / 'stage299.log').read_text() == 'log 299\n'


def test_return_without_a_state_leaves_no_part(tmp_path):
  # The script in a checkout of its own that has no .campaign/work.
  (tmp_path / 'repo' / 'benchmarks').mkdir(parents=True)
  script = tmp_path / 'repo' / 'benchmarks' / 'campaign_pack.sh'
  script.write_text((ROOT / 'benchmarks' / 'campaign_pack.sh').read_text())
  (tmp_path / 'out').mkdir()
  result = subprocess.run(['bash', str(script), '--return',
                           str(tmp_path / 'out')], capture_output=True,
                          text=True, timeout=60)
  assert result.returncode == 2
  assert 'no ' in result.stderr and '.campaign/work to return' in result.stderr
  assert not os.listdir(tmp_path / 'out')


@pytest.mark.parametrize('variable, value, message', [
    ('BUDGET_S', 'abc', 'error: BUDGET_S=abc is not seconds'),
    ('DRY_RUN', 'true', 'error: DRY_RUN=true: use 1 or 0'),
    ('SMOKE', 'yes', 'error: SMOKE=yes: use 1 or 0'),
])
def test_a_bad_setting_stops_the_call_before_any_stage(tmp_path, variable,
                                                       value, message):
  result = subprocess.run(
      ['bash', 'benchmarks/gpu_campaign.sh', str(tmp_path / 'work'),
       str(tmp_path / 'out')], cwd=ROOT, env=dict(os.environ,
                                                   **{variable: value}),
      capture_output=True, text=True, timeout=60)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [message]
  assert not (tmp_path / 'work').exists()


def test_a_dry_run_names_a_misspelt_skip(tmp_path):
  result = subprocess.run(
      ['bash', 'benchmarks/gpu_campaign.sh', str(tmp_path / 'work'),
       str(tmp_path / 'out')], cwd=ROOT, env=dict(
           os.environ, DRY_RUN='1', SMOKE='1', SKIP='bench_a tabel1'),
      capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stderr
  assert result.stderr.strip().splitlines() == [
      'campaign: SKIP names no stage of this script: tabel1']


def test_pack_refuses_a_missing_part_and_a_return_without_a_folder(tmp_path):
  first = tmp_path / 'campaign.tgz.00'
  first.write_bytes(b'the first part')
  missing = tmp_path / 'campaign.tgz.01'
  result, kept = _pack(tmp_path, first, missing)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      f'campaign_pack: {missing}: no such file; kept state unchanged']
  assert kept.read_bytes() == KEPT
  result, _ = _pack(tmp_path, '--return', missing)
  assert result.returncode == 2
  assert result.stderr == ('usage: bash benchmarks/campaign_pack.sh --return '
                           'DIR (a folder)\n')
