# CE-only twin of ../../frskd/resnet18_mit67.py: ResNet-18 from scratch on MIT
# Indoor-67 (67 scene classes) at 224 px, the Stanford Dogs setting
# (../dogs/resnet18_dogs_baseline.py) on the folder layout
# data/mit67/{train,valid}/<class>/*.jpg
_base_ = ['../dogs/resnet18_dogs_baseline.py']

model = dict(head=dict(num_classes=67))
data_preprocessor = dict(num_classes=67)
train_dataloader = dict(dataset=dict(data_root='data/mit67'))
val_dataloader = dict(dataset=dict(data_root='data/mit67'))
test_dataloader = val_dataloader
