"""Installs modern-llm: the model package plus what every step of the pipeline imports (training, lm-eval for the
evaluation, the report's plots), so a plain ``pip install -e .`` can run the whole pipeline.

CPU machines (laptops, CI): ``pip install -c constraints/cpu.txt -e ".[dev]"`` pins the CPU build of
torch and the versions tested together; GPU clusters: ``pip install -e ".[gpu]"``. Floors are the oldest versions
with the APIs the code calls (lm-eval 0.4.12: the task index the evaluation loads tasks through).
"""

from setuptools import find_packages, setup

setup(
    name="modern-llm",
    version="0.1.0",
    description="A small modern decoder-only LM taken through pretrain, SFT, DPO, a verifier and an honest evaluation.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["modeling_modern_llm", "modeling_modern_llm.*"]),
    include_package_data=True,
    install_requires=[
        "torch>=2.4",
        "transformers>=5.0,<6",
        "trl>=1.0,<2",
        "accelerate>=1.0,<2",
        "peft>=0.17",
        "datasets>=3.0",
        "evaluate>=0.4",
        "lm-eval>=0.4.12",
        "tokenizers>=0.21",
        "huggingface_hub>=1.0",
        "safetensors",
        "numpy",
        "pyyaml",
        "tqdm",
        "matplotlib>=3.7",
        "pandas",
        "pyarrow",
        "scipy",  # Student's t quantiles of the intervals across seeds
    ],
    extras_require={
        # llama.cpp's GGUF file from `export_llama --gguf`
        "gguf": ["gguf>=0.18"],
        "dev": ["pytest>=8", "pytest-timeout", "gguf>=0.18", "ruff", "tensorboard"],
        # The GPU configs train on sdpa (exact sinks on PyTorch's fused kernels), so no flash-attention build is
        # needed; DeepSpeed for zero2/zero3.yaml, tensorboard for their `report_to`. docs/MODEL.md: optional kernels.
        "gpu": ["deepspeed>=0.15", "tensorboard"],
    },
    entry_points={
        "console_scripts": [
            "modern-llm-train-tokenizer=modeling_modern_llm.tokenizer:main",
            "modern-llm-export-llama=modeling_modern_llm.export_llama:main",
        ]
    },
)
