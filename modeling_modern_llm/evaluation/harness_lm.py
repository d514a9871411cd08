"""lm-eval's HF model class (`HFLM`), except that each sequence stops generating at its own stop string.

lm-eval's stopping criteria answer for the whole batch: a batch stops once every sequence holds the *same* stop string,
so a batch in which one sequence ended on its eos token (or on another stop string) runs on to `max_gen_toks`; measured
on the cpu-demo pretrained model, that is 1.3x the decoding steps. transformers' own `stop_strings` stop each sequence
where it stops. The texts are lm-eval's: it still cuts each one at its first stop sequence, and a sequence's greedy
decoding does not depend on when the others in its batch stop (tests/evaluation checks both classes agree).
"""

from lm_eval.models.huggingface import HFLM


class HarnessLM(HFLM):
    def _model_generate(self, context, max_length, stop, **generation_kwargs):
        return super()._model_generate(context, max_length, [], stop_strings=stop, tokenizer=self.tokenizer,
                                       **generation_kwargs)
