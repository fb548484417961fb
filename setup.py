from setuptools import find_packages, setup

setup(
    name='ddistill',
    version='0.1.0',
    description='Dataset distillation (Wang et al.) in JAX.',
    # configs/ and experiments/ run from a checkout as `python -m
    # experiments.mnist --config configs/mnist.py`; installed, they are
    # ddistill.configs and ddistill.experiments, so they never collide with
    # another project's top-level `configs` or `experiments`.
    packages=find_packages(include=['ddistill', 'ddistill.*']) +
    ['ddistill.configs', 'ddistill.experiments'],
    package_dir={'ddistill.configs': 'configs',
                 'ddistill.experiments': 'experiments'},
    python_requires='>=3.11',  # As jax 0.8.
    install_requires=[
        'absl-py>=2.0',
        'chex>=0.1.86',
        'flax>=0.12',
        'h5py>=3.10',
        # The oldest jax, jaxlib, flax and optax the core tests passed
        # with (README); with jax 0.6.1 20 of them failed (no jax.enable_x64,
        # a scan carry of another type in standard_eval).
        'jax>=0.8.0',
        'jaxlib>=0.8.0',
        'matplotlib>=3.8',  # Figure 3's plot.
        'ml-collections>=0.1.1',
        'numpy>=1.26',
        'optax>=0.2.5',  # optax.tree.norm.
        'orbax-checkpoint>=0.11',
        'pillow>=10.0',
        'quadprog>=0.1.11',  # GEM's quadratic program.
        'scikit-learn>=1.3',  # k-means++ for the baselines.
        'tensorflow-datasets>=4.9.7',
        'tqdm>=4.66',
    ],
    extras_require={
        'test': ['pytest>=8.0', 'pytest-xdist>=3.5', 'nbclient>=0.10',
                 'nbformat>=5.9', 'ipykernel>=6.29',
                 'filelock>=3.12'],  # Lets jax cap the tests' compile cache.
    },
)
