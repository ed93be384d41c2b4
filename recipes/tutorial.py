# The tutorial's recipe (2019 slides and scripts), every setting spelled out.
# python train.py recipes/tutorial.py
use_cuda = True                             # train on the GPU when there is one
train_feat_dir = 'feat_logfbank_nfilt40/train'  # <dir>/<speaker>/<utterance>.p
val_ratio = 10                              # percent of the files held out for validation
backbone = 'resnet18'                       # ResNet-18, narrow (16-32-64-128 channels)
pooling = 'avg'                             # global average pooling
stem_stride = 1                             # first convolution keeps bands and frames
embedding_size = 128                        # the d-vector: fc0's 128 outputs
loss_type = 'softmax'                       # cross-entropy over the training speakers
spec_augment = False                        # no masking
speed_perturb = False                       # no speed-perturbed copies
win_size = 100                              # training crops of 100 frames (1 s)
start = 1                                   # number of the first epoch
n_epochs = 30                               # 30 epochs from start
lr = 0.1                                    # initial learning rate
wd = 1e-4                                   # weight decay
optimizer_type = 'sgd'                      # SGD, momentum 0.9
lr_schedule = 'plateau'                     # lr / 10 after 3 epochs without progress (patience 2)
batch_size = 64                             # training crops per step
valid_batch_size = 16                       # whole utterances per validation batch
use_shuffle = True                          # shuffle the training set every epoch
seed = 1                                    # the same split and crops every run
log_dir = 'model_saved'                     # checkpoints and loss_plot.png
whiten = False                              # no whitening after training
whole_utterance = False                     # embed utterances as summed 100-frame pieces
