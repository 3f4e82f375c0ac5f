"""The two-worker model of the tests: layer 1 on worker 0, layer 2 on worker 1 (the issue's
example), for the in-process and the distributed tests alike."""

import sluice as sl


def build_two_worker_model(optimizer=None):
    """The issue's model: layer 1 on worker 0, layer 2 on worker 1, trained by `optimizer`.

    Returns (graph, dict of x, y, w1, w2, logits, loss, grads (of loss by w1 and w2), train and
    init)."""
    g = sl.Graph()
    with g.as_default():
        x = sl.placeholder(sl.float32, shape=[None, 4], name="x")
        y = sl.placeholder(sl.int64, shape=[None], name="y")
        with sl.device("/job:worker/task:0"):
            w1 = sl.Variable(sl.random_normal([4, 8], seed=1), name="w1")
            h = sl.nn.relu(sl.matmul(x, w1))
        with sl.device("/job:worker/task:1"):
            w2 = sl.Variable(sl.random_normal([8, 3], seed=2), name="w2")
            logits = sl.matmul(h, w2, name="logits")
        loss = sl.reduce_mean(
            sl.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits), name="loss")
        grads = sl.gradients(loss, [w1, w2])
        train = (optimizer or sl.train.GradientDescentOptimizer(0.1)).minimize(loss)
        init = sl.global_variables_initializer()
    return g, dict(x=x, y=y, w1=w1, w2=w2, logits=logits, loss=loss, grads=grads, train=train,
                   init=init)
