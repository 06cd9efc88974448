"""The graphs and Sessions of a process, kept for the next stage that needs the same: the scales of a run, the
images of a data set (and a film's frames, an image's tiles) share them, each stage feeding its own targets and
start image, whatever its size.

    graphs = Graphs(build, several_items)         # build: style_transfer.build_graph
    graphs.make_room_for(job.plan.graph_count)    # a data set keeps every graph its items' plans need
    model, saver, sess = graphs.get(problem, weights, extras)
    graphs.close()

A graph is keyed by what it depends on: Problem.graph_key (not the images, the size or the start) and what its
stage adds to the model (runner.stages.Extras.key). Each gets a Saver (made before the graph is finalised) and a
Session.
"""

import collections

from runner import run_folder
from runner.tf_setup import SESSION_CONFIG, tf


class Graphs:
    def __init__(self, build, several_items):
        """build(problem, weights, extras): the model, built. several_items: several images will come (a data
        set), each through its plan's graphs: as many graphs are kept as a plan needs; without, one at a time (the
        previous one closed when the next is built)."""
        self.build, self.several_items = build, several_items
        self.capacity = 1
        self.built = collections.OrderedDict()  # key -> (model, saver, Session)

    def make_room_for(self, count):
        """With several items: keep at least `count` graphs (a plan's), so that the next item finds them built."""
        if self.several_items:
            self.capacity = max(self.capacity, count)

    def get(self, problem, weights, extras):
        """(model, saver, Session)."""
        key = (problem.graph_key(), extras.key)
        if key not in self.built:
            while len(self.built) >= self.capacity:
                self.built.popitem(last=False)[1][2].close()
            model = self.build(problem, weights, extras)
            with model.graph.as_default():
                saver = run_folder.new_saver()
            model.graph.finalize()  # nothing below may grow the graph
            self.built[key] = (model, saver, tf.Session(graph=model.graph, config=SESSION_CONFIG))
        self.built.move_to_end(key)
        return self.built[key]

    def close(self):
        while self.built:
            self.built.popitem()[1][2].close()
