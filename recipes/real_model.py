# The recipe of the shipped real-speech model (model_real/): ECAPA-TDNN on the full DB's 200
# training speakers plus 250 synthetic espeak-ng voices (so that it tells synthetic voices apart
# as well as people), 10 epochs with a cosine schedule over all of them (an interrupted run
# continues with --resume true and ends where an unbroken one would), and band limiting: a fifth
# of the training crops lose their bands above a telephone's cut-off (3.4-4.4 kHz), as a
# recording made at 8 kHz does. The synthetic voices are made at the tutorial DB's speech level,
# as every recording is heard (dvector.features.at_db_level): at their synthesised level, 20 dB
# above the people's, the model could tell them apart by loudness. docs/RESULTS.md section 11.
# python tools/split_heldout.py --db_dir data/tutorial_db --dest runs/heldout_full
# python tools/make_demo_db.py --out_dir runs/syn250_db --n_train_speakers 250 --n_utts 40 --n_test_speakers 1 --seed 2027 --speech_level -42
# OMP_NUM_THREADS=1 python train.py recipes/real_model.py [--resume true]
train_feat_dir = 'runs/heldout_full/train,runs/syn250_db/feat_logfbank_nfilt40/train'  # 200 + 250
log_dir = 'runs/real_model'                  # checkpoints
backbone = 'ecapa'                           # ECAPA-TDNN, 256 channels
pooling = 'stats'                            # mean and standard deviation over frames
speed_perturb = True                         # speeds 0.9 and 1.1 as new speakers (3x classes)
speed_factors = '0.9,1.1'                    # the speeds of the copies
lr_schedule = 'cosine'                       # cosine decay over the run
n_epochs = 10                                # about the tutorial's 30 epochs of CPU time
batch_size = 32                              # twice the steps of batch 64
val_ratio = 2                                # 2 % of the files for validation
lr = 0.05                                    # half the tutorial's learning rate
whiten = True                                # then fit the whitening (and the AS-norm cohort)
whiten_layer = 'both'                        # pooled statistics (+ LDA) and d-vector, side by side
whole_utterance = True                       # embed each utterance whole, in one pass
band_limit = 0.2                             # a fifth of the crops cut to a telephone band
seed = 2                                     # the seed of the shipped run
