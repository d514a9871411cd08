"""lm-eval's HF model class (`HFLM`), except that each sequence stops generating at its own stop string, and that a
task can ask for GSM8K's calculator.

lm-eval's stopping criteria answer for the whole batch: a batch stops once every sequence holds the *same* stop string,
so a batch in which one sequence ended on its eos token (or on another stop string) runs on to `max_gen_toks`; measured
on the cpu-demo pretrained model, that is 1.3x the decoding steps. transformers' own `stop_strings` stop each sequence
where it stops. The texts are lm-eval's: it still cuts each one at its first stop sequence, and a sequence's greedy
decoding does not depend on when the others in its batch stop (tests/evaluation checks both classes agree).

`calculator: true` in a task's `generation_kwargs` (the `*_calculator` tasks in eval/tasks/) generates with
`modeling_modern_llm.calculator`'s logits processor: after `<<expression=` the model writes the computed value.
"""

from lm_eval.models.huggingface import HFLM

from modeling_modern_llm.calculator import calculator_logits_processor


class HarnessLM(HFLM):
    def _model_generate(self, context, max_length, stop, calculator=False, **generation_kwargs):
        if calculator:
            if getattr(self, "_calculator", None) is None:  # the vocabulary's texts are decoded once per model
                self._calculator = calculator_logits_processor(self.tokenizer)
            generation_kwargs["logits_processor"] = self._calculator
        return super()._model_generate(
            context, max_length, [], stop_strings=stop, tokenizer=self.tokenizer, **generation_kwargs
        )
