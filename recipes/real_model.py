# The recipe of the shipped real-speech model (model_real/): full_ecapa.py (the slice's best
# recipe on the full DB's 200 training speakers, 7 epochs) plus 250 synthetic espeak-ng voices
# as more training speakers, so that the model tells synthetic voices apart as well as people
# (trained on people only, it scores any two espeak-ng voices 0.8-0.97). docs/RESULTS.md 8c-8d.
# python tools/split_heldout.py --db_dir data/tutorial_db --dest runs/heldout_full
# python tools/make_demo_db.py --out_dir runs/syn250 --n_train_speakers 250 --n_utts 40 --n_test_speakers 1 --seed 2027
# python train.py recipes/real_model.py, then python evaluate.py ... (docs/RESULTS.md 8c)
train_feat_dir = 'runs/heldout_full/train,runs/syn250/feat_logfbank_nfilt40/train'  # 200 + 250
log_dir = 'runs/real_model'                  # checkpoints
backbone = 'ecapa'                           # ECAPA-TDNN, 256 channels
pooling = 'stats'                            # mean and standard deviation over frames
speed_perturb = True                         # speeds 0.9 and 1.1 as new speakers (3x classes)
speed_factors = '0.9,1.1'                    # the speeds of the copies
lr_schedule = 'cosine'                       # cosine decay over the run
n_epochs = 7                                 # 7 epochs
batch_size = 32                              # twice the steps of batch 64
val_ratio = 2                                # 2 % of the files for validation
lr = 0.05                                    # half the tutorial's learning rate
whiten = True                                # then fit the whitening (and the AS-norm cohort)
whiten_layer = 'both'                        # pooled statistics (+ LDA) and d-vector, side by side
whole_utterance = True                       # embed each utterance whole, in one pass
