"""`cmt-demo`: the orchestration, on a tiny setting (--quick)."""

import importlib.util
import json

import pytest

from cmt.tools import demo


def test_missing_config_is_a_usage_error(tmp_path, capsys):
  missing = tmp_path / 'nope.textproto'
  assert demo.main([f'--output_dir={tmp_path}',
                    f'--config_file={missing}']) == 2
  assert str(missing) in capsys.readouterr().err


@pytest.mark.slow
def test_quick_demo_runs_every_step(tmp_path, capsys):
  out = tmp_path / 'demo'
  assert demo.main([f'--output_dir={out}', '--quick', '--num_predict=2']) == 0
  layout = demo.Layout(out)
  assert sorted(p.name for p in layout.tfrecords.iterdir()) == [
      'train-00000-of-00002.tfrecord', 'train-00001-of-00002.tfrecord',
      'val-00000-of-00002.tfrecord', 'val-00001-of-00002.tfrecord']
  content = json.loads(layout.metrics_json.read_text())
  # Evaluated after the --quick schedule, on the 4 validation images.
  assert content['step'] == 4
  assert content['experiment_name'] == 'cmt_deeplab_demo'
  assert content['metrics']['num_images'] == demo.QUICK_DATA.num_val
  printed = capsys.readouterr().out
  if importlib.util.find_spec('cmt.export') is None:
    assert 'skipped: cmt.export' in printed
  else:
    assert (layout.saved_model / 'saved_model.pb').is_file()
    overlays = sorted(
        p.name for p in (layout.predictions / 'overlay').iterdir())
    assert overlays == ['val_000000.png', 'val_000001.png']
  assert 'Panoptic quality of cmt_deeplab_demo at step 4' in printed
  assert demo.format_pq_table(content['metrics']) in printed


@pytest.mark.slow
def test_a_failing_step_stops_the_demo(tmp_path, capsys):
  out = tmp_path / 'demo'
  # A field the config does not have: cmt-train rejects it.
  status = demo.main([f'--output_dir={out}', '--quick',
                      '--override=trainer_options.no_such_field=1'])
  assert status == 1
  assert 'cmt-train exited with status 1; stopped' in capsys.readouterr().err
  layout = demo.Layout(out)
  assert layout.tfrecords.is_dir()  # the steps before it ran
  assert not layout.metrics_json.exists()
  assert not layout.saved_model.exists()
