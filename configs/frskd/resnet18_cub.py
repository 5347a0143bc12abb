# FRSKD (Ji et al., CVPR 2021): ResNet-18 (from scratch) self-distilled on
# CUB-200-2011 with the BiFPNc self-teacher. alpha 2, beta 100, T 4: the
# authors' published (CIFAR-100) values; the paper's per-dataset table could
# not be verified (README.md). Usage (8 GPUs, or 8 CPU processes):
#     tools/train.sh configs/frskd/resnet18_cub.py 8
_base_ = [
    '../vanilla/cub/resnet18_cub_baseline.py', './_base_/frskd_resnet.py'
]
custom_imports = dict(imports=['mmkd'], allow_failed_imports=False)

model = dict(_delete_=True, student=_base_.model, **_base_.frskd)
model['connectors']['self_teacher']['num_classes'] = 200
