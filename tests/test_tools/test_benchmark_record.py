def test_per_iteration_ratios_pair_the_iterations(load_tool):
    benchmark = load_tool('benchmark.py')
    times = dict(distiller=[30., 12., 50.], floor=[20., 10., 40.])
    assert benchmark.per_iteration(times, 'distiller', 'floor') == [
        1.5, 1.2, 1.25
    ]
    # not the ratio of the medians (30 / 20): each pair of one iteration
    assert benchmark.per_iteration(times, 'distiller', 'student') is None
