"""Run management for style_transfer.py: everything around the algorithm, one concern per module.

    tf_setup    TensorFlow's environment, determinism and Session configurations (imported first)
    options     the command line (argparse only; reads no files)
    problem     Problem: what is optimised, the run's identity in its run record
    scales      the stages of a still image (its coarse-to-fine scales) and what every plan of stages answers
    video       a film's stages (its frames): frames in, frames and a video out; flow: the optical flow
    tiles       a large image's stages (coarse scales, then its tiles): layout, blending, the assembled image
    items       what --content names (files, folders, lists, TFRecords, films); tfrecords: the two layouts
    inputs      options -> typed Jobs: files fetched and checked, images read, weights loaded, folders checked
    graphs      the graphs and Sessions a process keeps for the images that share them
    batch       many items: shards, manifests, skip and retry
    run_folder  the run's folders: run record, checkpoints, TensorBoard events; start or resume
    outputs     what is written after each step: summaries, progress lines, images, checkpoints, the best image
    signals     Ctrl-C and SIGTERM turned into a flag the loop reads between steps

Imports point one way: style_transfer.py uses these; none of them imports style_transfer.py.
"""
