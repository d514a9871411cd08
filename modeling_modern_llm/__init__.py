"""modern-llm: a small modern decoder LM that transformers, TRL, PEFT and lm-eval load like any Hub model.

Importing this package registers `ModernLLMConfig` and the models with `AutoConfig`, `AutoModel`,
`AutoModelForCausalLM` and `AutoModelForSequenceClassification`, and marks them for remote-code sharing, so
`save_pretrained` writes the model's .py files and an `auto_map`. `check_attention_implementation(name,
attention_sinks, training)` validates a kernel choice before any model is built. It imports torch and transformers
only; the data, training and evaluation sub-packages are imported on demand.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
)

from .attention_kernels_modern_llm import ATTENTION_CAPABILITIES, attention_capabilities, check_attention_implementation
from .configuration_modern_llm import ModernLLMConfig
from .modeling_modern_llm import (
    ModernLLMForCausalLM,
    ModernLLMForSequenceClassification,
    ModernLLMModel,
    ModernLLMPreTrainedModel,
)
from .streaming_modern_llm import StreamingSinkCache

AutoConfig.register(ModernLLMConfig.model_type, ModernLLMConfig, exist_ok=True)
for _auto_class, _model_class in (
    (AutoModel, ModernLLMModel),
    (AutoModelForCausalLM, ModernLLMForCausalLM),
    (AutoModelForSequenceClassification, ModernLLMForSequenceClassification),
):
    _auto_class.register(ModernLLMConfig, _model_class, exist_ok=True)
    _model_class.register_for_auto_class(_auto_class.__name__)
ModernLLMConfig.register_for_auto_class()

__all__ = [
    "ATTENTION_CAPABILITIES",
    "attention_capabilities",
    "check_attention_implementation",
    "ModernLLMConfig",
    "ModernLLMForCausalLM",
    "ModernLLMForSequenceClassification",
    "ModernLLMModel",
    "ModernLLMPreTrainedModel",
    "StreamingSinkCache",
]
