# CE-only twin of ../../frskd/resnet18_stanford40.py: ResNet-18 from scratch on
# Stanford 40 Actions (40 classes) at 224 px, the Stanford Dogs setting
# (../dogs/resnet18_dogs_baseline.py) on the folder layout
# data/stanford40/{train,valid}/<class>/*.jpg
_base_ = ['../dogs/resnet18_dogs_baseline.py']

model = dict(head=dict(num_classes=40))
data_preprocessor = dict(num_classes=40)
train_dataloader = dict(dataset=dict(data_root='data/stanford40'))
val_dataloader = dict(dataset=dict(data_root='data/stanford40'))
test_dataloader = val_dataloader
