"""check_student_inference.py: which mmkd modules a student config names
(a ReviewKD student's CIFAR ResNet backbone is mmkd's; a distiller is not a
student)."""


def test_mmkd_types_are_found_at_any_depth(load_tool):
    find = load_tool('experiments/check_student_inference.py').mmkd_types_of
    student = dict(
        type='ImageClassifier',
        backbone=dict(type='mmkd.CIFARResNet', arch='resnet20'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead',
                  loss=[dict(type='CrossEntropyLoss'),
                        dict(type='mmkd.KDLoss')]))
    assert find(student) == {'mmkd.CIFARResNet', 'mmkd.KDLoss'}
    assert find(dict(type='ImageClassifier', backbone=dict(
        type='ResNet', depth=18))) == set()
    # a 'type' that is not a string (a class) is not a registry name
    assert find(dict(type=dict, cfg=[dict(type='mmkd.X')])) == {'mmkd.X'}
