# recipes/resnet_speed_whiten.py with stats pooling: the best ResNet identification
# (docs/RESULTS.md).
# python train.py recipes/resnet_speed_whiten_stats.py
train_feat_dir = 'runs/heldout_slice/train'  # tools/split_heldout.py --every 8
log_dir = 'runs/resnet_speed_whiten_stats'   # checkpoints
pooling = 'stats'                            # mean and standard deviation over frames
speed_perturb = True                         # speeds 0.9 and 1.1 as new speakers (3x classes)
speed_factors = '0.9,1.1'                    # the speeds of the copies
n_epochs = 30                                # 30 epochs
whiten = True                                # then fit d-vector whitening into the checkpoint
