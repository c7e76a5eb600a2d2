"""`isolate=true`: the method lives in a worker process; the parent keeps the data, the labels, the evaluator,
the run writer, the manifest and the checkpoints.

    parent (benchmark.runner)                          worker (python -m benchmark.hosts.worker.worker FD)
      datasets, ground truth, evaluator, writer          plugins imported here only (COVSEG_PATH, entry points)
      WorkerHost (host.py) ------ socket ----->          an InProcessHost: the ContinualMethod and its segmenter

Messages are pickled tuples over a socket pair (channel.py); each request gets one reply, ("ok", value) or
("error", {type, message, user}):

    ("contain", plan)           -> {network}: sandbox=true only, answered by the first stage (benchmark.confine)
                                   once it has confined itself, before the worker proper runs
    ("start", setup)            -> the method's checked config and the files its class comes from
    ("learn", step)             -> None; meanwhile the worker asks ("sample", position) and the parent answers
                                   with that position's training sample, labels already filtered to C_t
    ("predict", images, vocab)  -> [SegmentationOutput]  (ImageInputs and a copy of the vocabulary go over)
    ("state_dict",)             -> {pickle, files}: the state as opaque bytes plus side files (faiss indexes,
                                   row stores) in the worker's scratch folder, kept by the parent for checkpoints
    ("load_state_dict", state), ("memory_bytes",), ("trainable_parameters",), ("rng_states",),
    ("set_rng_states", states), ("counters",), ("close",) (no reply: the worker exits)
    ("stream_metrics", scores, known) -> {name: value} of the stream metrics the plugins registered in the
                                   worker, other than the parent's `known` ones (scores: R, its initial row and
                                   the last step's per-class scores; see MethodHost.stream_metrics)

The worker starts from a scrubbed environment (no data root, no DETECTRON2_DATASETS, no results folder; see
`host.worker_environment`), an argv holding only its socket's descriptor, and a fresh empty working
directory. The parent never unpickles anything but numbers, strings, numpy arrays and the output dataclasses
from it (`channel.RESTRICTED`), so a worker cannot run code in the parent by sending a crafted pickle. With
sandbox=true the worker first confines itself (benchmark.confine, to the plan of sandbox.py): a network
namespace, an unprivileged user where the parent is root, Linux Landlock.
"""
