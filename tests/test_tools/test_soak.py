"""tools/analysis_tools/soak.py: the per-kind soak records memory readings
and catches a tap that keeps the tensors of a past step."""
import pytest


@pytest.fixture(scope='module')
def soak(load_tool):
    return load_tool('analysis_tools/soak.py')


def test_a_short_soak_records_readings_and_no_leak(soak):
    record = soak.soak_one('kd', steps=6, warmup=2, every=2)
    assert [s for s, _ in record['rss_mb']] == [2, 4, 6]
    assert record['rss_after_warmup_mb'] == record['rss_mb'][0][1] > 0
    assert record['hooks'] == 4  # one per tap, kept from the build
    assert record['leaks'] == [] and record['skipped_steps'] == 0


def test_a_tap_keeping_past_tensors_fails_the_soak(soak, monkeypatch):
    from mmkd.models.distillers import Distiller
    record_taps = Distiller._record

    def keeping(self, inputs, data_samples, student_mode, probe=False):
        values, out = record_taps(self, inputs, data_samples, student_mode,
                                  probe)
        if not probe:  # a tap that keeps the step's feature
            self.taps['s3'].calls.append(values['s3'])
        return values, out

    monkeypatch.setattr(Distiller, '_record', keeping)
    record = soak.soak_one('kd', steps=3, warmup=1, every=1)
    assert not record['passed']
    assert record['leaks'][0] == "step 1: taps ['s3'] hold tensors"


def test_bad_arguments(soak):
    with pytest.raises(SystemExit):
        soak.parse_args(['--steps', '10', '--warmup', '10'])
    with pytest.raises(SystemExit):
        soak.parse_args(['--kinds', 'kd', 'dkd'])
