# The shipped real-speech model (model_real/): recipes/real_model.py's model, fine-tuned with a
# large margin. Its weights, the same 200 + 250 speakers with speed perturbation, then 3 short
# epochs of AAM-softmax (margin 0.2, scale 30) on 2 s crops at a tenth of the learning rate; the
# classifier starts at each class's mean d-vector (train.py's init_from), so the pretrained
# embedding is not first pulled towards random weights. The shipped model is seed 2 of both
# recipes (the fine-tuning read the same weights from the model shipped before it).
# docs/RESULTS.md section 11.
# OMP_NUM_THREADS=2 python train.py recipes/real_model.py
# OMP_NUM_THREADS=1 python train.py recipes/real_model_lmft.py
train_feat_dir = 'runs/heldout_full/train,runs/syn250_db/feat_logfbank_nfilt40/train'  # 200 + 250
init_from = 'runs/real_model/checkpoint_10.pth'  # recipes/real_model.py's last epoch
log_dir = 'runs/real_model_lmft'             # checkpoints
backbone = 'ecapa'                           # the shipped model's: ECAPA-TDNN, 256 channels
pooling = 'stats'                            # mean and standard deviation over frames
speed_perturb = True                         # speeds 0.9 and 1.1 as new speakers (3x classes)
speed_factors = '0.9,1.1'                    # the speeds of the copies
loss_type = 'aamsoftmax'                     # additive angular margin
margin = 0.2                                 # angular margin (radians)
scale = 30.0                                 # cosine scale s
win_size = 200                               # 2 s crops: longer than the first training's
lr_schedule = 'cosine'                       # cosine decay over the run
n_epochs = 3                                 # a short fine-tuning
batch_size = 32                              # as in the first training
val_ratio = 2                                # 2 % of the files for validation (the same split)
lr = 0.005                                   # a tenth of the first training's learning rate
whiten = True                                # then fit the whitening (and the AS-norm cohort)
whiten_layer = 'both'                        # pooled statistics (+ LDA) and d-vector, side by side
whole_utterance = True                       # embed each utterance whole, in one pass
band_limit = 0.2                             # a fifth of the crops cut to a telephone band
seed = 2                                     # the shipped run's seed: the same validation split
