# ResNet-18 with stats pooling, AAM-softmax, SpecAugment and Adam: the best first change to the
# tutorial's recipe without whitening (docs/RESULTS.md). All else as recipes/tutorial.py.
# python train.py recipes/stats_aam_specaug_adam.py
train_feat_dir = 'runs/heldout_slice/train'  # tools/split_heldout.py --every 8
log_dir = 'runs/stats_aam_specaug_adam'      # checkpoints
pooling = 'stats'                            # mean and standard deviation over frames
loss_type = 'aamsoftmax'                     # ArcFace margin (default m 0.2, s 30)
spec_augment = True                          # mask one band stretch and one frame stretch
optimizer_type = 'adam'                      # Adam
lr = 0.001                                   # Adam's learning rate
wd = 0.0                                     # no weight decay
lr_schedule = 'cosine'                       # cosine decay over the run
batch_size = 32                              # twice the steps of batch 64
n_epochs = 30                                # 30 epochs
