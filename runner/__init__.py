"""Run management for style_transfer.py: everything around the algorithm, one concern per module.

    tf_setup    TensorFlow's environment, determinism and Session configurations (imported first)
    options     the command line (argparse only; reads no files)
    inputs      options -> typed Work and Jobs: every check before anything is written; the last reader of options
    job         the typed objects a run is made of: Job, Folders, Schedule
    images      a run's image files, read and fitted at each size (a style as pieces)
    memory      the memory a run needs, and the tiles that make it fit
    guards      nothing overwritten that the tool did not write, no input written over; folders writable
    problem     Problem: what is optimised, the run's identity in its run record
    stages      a plan: its phases of stages, what every phase answers, and a still image's (its scales)
    video       a film's phase (its frames) and its temporal loss piece; frames in, frames and a video out
    flow        optical flow between frames, its reliability, warping
    tiles       a large image's phases (coarse scales, then tiles) and a tile's view; blending, the assembled image
    items       what --content names (files, folders, lists, TFRecords, films); tfrecords: the two layouts
    graphs      the graphs and Sessions a process keeps for the stages and images that share them
    batch       many items: shards, manifests, skip and retry
    run_folder  the run's folders: run record, checkpoints, TensorBoard events; start or resume
    outputs     what is written after each step: summaries, progress lines, images, checkpoints, the best image
    signals     Ctrl-C and SIGTERM: a flag the loop reads between steps, a stop at once elsewhere

Imports point one way: style_transfer.py uses these; none of them imports style_transfer.py.
"""
