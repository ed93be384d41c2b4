# ECAPA-TDNN with stats pooling, a cosine schedule, speed perturbation and whitening, scored in
# 100-frame pieces: the first recipe under 10 % EER (docs/RESULTS.md).
# python train.py recipes/ecapa_stats_cosine.py
train_feat_dir = 'runs/heldout_slice/train'  # tools/split_heldout.py --every 8
log_dir = 'runs/ecapa_stats_cosine'          # checkpoints
backbone = 'ecapa'                           # ECAPA-TDNN, 256 channels
pooling = 'stats'                            # mean and standard deviation over frames
speed_perturb = True                         # speeds 0.9 and 1.1 as new speakers (3x classes)
speed_factors = '0.9,1.1'                    # the speeds of the copies
lr_schedule = 'cosine'                       # cosine decay over the run
n_epochs = 32                                # 32 epochs: the CPU time of 30 ResNet epochs
whiten = True                                # then fit d-vector whitening into the checkpoint
