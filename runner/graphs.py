"""The graphs and Sessions of a process, kept for the next image that needs the same: the images of a data set
(and a film's frames, an image's tiles) share them, each feeding its own content features and start image.

    graphs = Graphs(keep, sizes, several_items, build)   # build: style_transfer.build_graph
    model, saver, sess, content_features = graphs.get(problem, weights, images, fed)
    graphs.close()

A graph is keyed by what it depends on (Problem.graph_key: not the content image, not the start) and by whether
its content features are fed. Each gets a Saver (made before the graph is finalised) and a Session.
"""

import collections

from runner import run_folder
from runner.tf_setup import SESSION_CONFIG, tf


class Graphs:
    def __init__(self, keep, sizes, several_items, build):
        """keep: checkpoints kept. several_items: several images will come (a data set), each through the plan's
        sizes: a graph is kept for each size; without, one at a time (the previous one closed when the next is
        built). build(problem, weights, images, fed): (the model, built; content_features(image))."""
        self.keep, self.several_items, self.build = keep, several_items, build
        self.most = sizes if several_items else 1
        self.built = collections.OrderedDict()  # (graph key, fed) -> (model, saver, Session, content features)

    def get(self, problem, weights, images, fed):
        """(model, saver, Session, content_features(image): the features to feed for that content image). fed: the
        graph serves several content images, whose features come from a graph of their own (several items always
        do)."""
        fed = fed or self.several_items
        key = (problem.graph_key(), fed)
        if key not in self.built:
            while len(self.built) >= self.most:
                self._close(self.built.popitem(last=False)[1])
            model, content_features = self.build(problem, weights, images, fed)
            with model.graph.as_default():
                saver = run_folder.new_saver(self.keep)
            model.graph.finalize()  # nothing below may grow the graph
            self.built[key] = (model, saver, tf.Session(graph=model.graph, config=SESSION_CONFIG), content_features)
        self.built.move_to_end(key)
        return self.built[key]

    def close(self):
        while self.built:
            self._close(self.built.popitem()[1])

    @staticmethod
    def _close(built):
        built[2].close()
        getattr(built[3], "close", lambda: None)()  # a content-features graph's own Session
