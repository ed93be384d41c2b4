# ResNet-18, softmax, stats pooling, SpecAugment, Adam, then whitening: the best recipe before
# speed perturbation (docs/RESULTS.md). All else as recipes/tutorial.py.
# python train.py recipes/stats_specaug_adam_whiten.py
train_feat_dir = 'runs/heldout_slice/train'  # tools/split_heldout.py --every 8
log_dir = 'runs/stats_specaug_adam_whiten'   # checkpoints
pooling = 'stats'                            # mean and standard deviation over frames
loss_type = 'softmax'                        # no margin: whitening does much of its work
spec_augment = True                          # mask one band stretch and one frame stretch
optimizer_type = 'adam'                      # Adam
lr = 0.001                                   # Adam's learning rate
wd = 0.0                                     # no weight decay
lr_schedule = 'cosine'                       # cosine decay over the run
batch_size = 32                              # twice the steps of batch 64
n_epochs = 30                                # 30 epochs
whiten = True                                # then fit d-vector whitening into the checkpoint
