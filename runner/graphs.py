"""The graphs and Sessions of a process, kept for the next stage that needs the same: the images of a data set
(and a film's frames, an image's tiles) share them, each feeding its own content features and start image.

    graphs = Graphs(build, several_items)         # build: style_transfer.build_graph
    graphs.make_room_for(job.plan.graph_count)    # a data set keeps every graph its items' plans need
    model, saver, sess, content_features = graphs.get(problem, weights, images, extras, content_fed, keep)
    graphs.close()

A graph is keyed by what it depends on: Problem.graph_key (not the content image, not the start), what its stage
adds to the model (runner.stages.Extras.key), and whether its content features are fed. Each gets a Saver (made
before the graph is finalised) and a Session.
"""

import collections

from runner import run_folder
from runner.tf_setup import SESSION_CONFIG, tf


class Graphs:
    def __init__(self, build, several_items):
        """build(problem, weights, images, extras, content_fed): (the model, built; content_features(image)).
        several_items: several images will come (a data set), each through its plan's graphs: as many graphs are
        kept as a plan needs; without, one at a time (the previous one closed when the next is built)."""
        self.build, self.several_items = build, several_items
        self.capacity = 1
        self.built = collections.OrderedDict()  # key -> (model, saver, Session, content features)

    def make_room_for(self, count):
        """With several items: keep at least `count` graphs (a plan's), so that the next item finds them built."""
        if self.several_items:
            self.capacity = max(self.capacity, count)

    def get(self, problem, weights, images, extras, content_fed, keep):
        """(model, saver, Session, content_features(image): the features to feed for that content image).
        content_fed: the graph serves several content images, whose features come from a graph of their own
        (several items always do). keep: how many checkpoints the Saver keeps."""
        content_fed = content_fed or self.several_items
        key = (problem.graph_key(), extras.key, content_fed, keep)
        if key not in self.built:
            while len(self.built) >= self.capacity:
                self._close(self.built.popitem(last=False)[1])
            model, content_features = self.build(problem, weights, images, extras, content_fed)
            with model.graph.as_default():
                saver = run_folder.new_saver(keep)
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
