"""Train the MNIST classifier whose features and logits measure sample quality.

The defaults reproduce the committed jaxgan/assets/mnist_classifier.msgpack
(deterministic for a seed on one JAX version and machine type); the script
prints the file's sha256 to put in jaxgan/classifier.py.
"""

import argparse
import sys
import time
from pathlib import Path

from gancore.data import DataError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8, help="passes over the 60,000 training images")
    parser.add_argument("--batch-size", type=int, default=128, help="images per Adam step")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the cosine schedule")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights, the shuffling and the random shifts")
    parser.add_argument("--out", default="jaxgan/assets/mnist_classifier.msgpack", help="where the weights go")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or not args.lr > 0:
        print("error: --epochs and --batch-size must be at least 1 and --lr positive.", file=sys.stderr)
        return 2
    import hashlib

    import jax
    import jax.numpy as jnp
    import optax

    from gancore import data
    from jaxgan import classifier

    try:
        train, test = data.load("train"), data.load("test")
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    steps_per_epoch = len(train) // args.batch_size
    tx = optax.adam(optax.cosine_decay_schedule(args.lr, args.epochs * steps_per_epoch))
    init_key, shuffle_key, augment_key = jax.random.split(jax.random.key(args.seed), 3)
    params = classifier.init_params(init_key)
    opt_state = tx.init(params)
    images_NxD, labels_N = jax.device_put(train.flat_NxD), jax.device_put(train.labels_N)
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        perm = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), len(train))
        losses = []
        for i in range(steps_per_epoch):
            idx_B = perm[i * args.batch_size : (i + 1) * args.batch_size]
            step_key = jax.random.fold_in(augment_key, (epoch - 1) * steps_per_epoch + i)
            params, opt_state, loss = classifier.train_step(params, opt_state, step_key, images_NxD, labels_N, idx_B, tx=tx)
            losses.append(loss)
        acc = classifier.accuracy(params, test.flat_NxD, test.labels_N)
        print(f"epoch {epoch}: loss {float(jnp.mean(jnp.stack(losses))):.4f}, test accuracy {acc:.4f}, {time.perf_counter() - start:.0f} s", flush=True)
    raw = classifier.to_bytes(params)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(raw)
    print(f"wrote {out} ({len(raw):,} bytes), sha256 {hashlib.sha256(raw).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
