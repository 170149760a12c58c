#!/usr/bin/env python3
"""check_examples_paper.py -- structure checks for test_examples_paper.sh.

usage: check_examples_paper.py example NAME DATA.jsonl OUT.jsonl
       check_examples_paper.py same-vars A.json B.json
       check_examples_paper.py nested|stdlib-pure|stdlib-gen RESULT.json
       check_examples_paper.py bench BENCH.jsonl N_LINES N_CONFIGS
       check_examples_paper.py jump-forward BENCH.jsonl

Checks what the programs guarantee whatever the model says (list lengths
after forks, choices, regexes, JSON validity, typed values, cache reuse),
never the text itself. Prints the first problem and exits 1.
"""
import json
import math
import re
import sys


class Bad(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise Bad(msg)


def is_str_list(v, n=None):
    return isinstance(v, list) and all(isinstance(x, str) for x in v) and (n is None or len(v) == n)


def check_gsm8k(inp, o, i):
    v = o["vars"]
    need(re.fullmatch(r"-?[0-9]*", o["return"]), "return %r is not a number" % o["return"])
    need(isinstance(v["reasoning"], str), "reasoning")
    # the few-shot prefix is hoisted: every run finds it in the cache
    m = o["meta"]
    need(m["cached_tokens"] >= 0.7 * m["prompt_tokens"],
         "few-shot prefix not cached: %d of %d prompt tokens" % (m["cached_tokens"], m["prompt_tokens"]))
    need(o["text"].count("The answer is") == 4, "the four shots are not in the prompt")


def check_hellaswag(inp, o, i):
    v = o["vars"]
    for k in ("a", "b"):
        need(v[k] in inp["endings"], "%s = %r is not one of the endings" % (k, v[k]))
    need(v["agree"] == (v["a"] == v["b"]), "agree")
    need(any(v["c"].startswith(e + " (score ") for e in inp["endings"]), "c = %r" % v["c"])


def check_mmlu(inp, o, i):
    need(o["return"] in ("A", "B", "C", "D"), "answer %r is not one letter A-D" % o["return"])
    need(o["meta"]["completion_tokens"] == 1 and o["meta"]["requests"] == 1, "not one 1-token request")
    need(o["text"].endswith("Answer: " + o["return"]), "the answer is not appended")
    for k, opt in enumerate(inp["options"]):
        need("%s. %s\n" % ("ABCD"[k], opt) in o["text"], "option %d missing" % k)


def check_multi_chain(inp, o, i):
    v = o["vars"]
    need(is_str_list(v["chain"], 5), "chain is not 5 strings")
    for k in range(5):
        need("Reasoning path %d: " % (k + 1) in o["text"], "path %d not merged" % (k + 1))
    need(isinstance(v["merged"], str) and o["return"] == v["merged"].strip(), "return")
    need(isinstance(v["votes"], int) and 0 <= v["votes"] <= 5, "votes")
    need(("Majority vote: %s (%d of 5)" % (v["voted"], v["votes"])) in o["text"], "vote line")
    need(o["meta"]["requests"] >= 6, "fewer than 6 requests")


def check_tot(inp, o, i):
    v = o["vars"]
    need(is_str_list(v["plan"], 3), "plan is not 3 strings")
    need(isinstance(v["step"], list) and len(v["step"]) == 3 and all(is_str_list(s, 2) for s in v["step"]),
         "step is not 3 x 2 strings (nested fork gather)")
    need(isinstance(v["scores"], list) and len(v["scores"]) == 3 and
         all(len(s) == 2 and all(isinstance(x, int) and 1 <= x <= 10 for x in s) for s in v["scores"]),
         "scores is not 3 x 2 ints in 1..10")
    need(v["best_score"] == [max(s) for s in v["scores"]], "best_score is not the max of each branch")
    for b in range(3):
        need(v["best_step"][b] == v["step"][b][v["best"][b]].strip(), "best_step %d" % b)
    need(v["k"] == v["best_score"].index(max(v["best_score"])), "k is not the best branch")
    need(("Best approach: %s\n" % v["plan"][v["k"]].strip()) in o["text"], "best approach line")


DIMS = ["Content", "Organization", "Style", "Clarity", "Grammar", "Originality"]


def check_judge(inp, o, i):
    v = o["vars"]
    need(is_str_list(v["judgement"], 6), "judgement is not 6 strings")
    for d in DIMS:
        need("\n%s: " % d in o["text"], "dimension %s not gathered into the prompt" % d)
    need(isinstance(o["return"], int) and 1 <= o["return"] <= 10, "score %r" % o["return"])
    need(isinstance(v["score"], int), "score is not an int")
    need(o["meta"]["requests"] >= 8, "expected 6 judgements + summary + score >= 8 requests")


def check_react(inp, o, i):
    v = o["vars"]
    need(1 <= v["steps"] <= 3, "steps")
    t = o["text"]
    need(("Question: %s\n" % inp["question"]) in t, "question")
    actions = re.findall(r"^Action: (.*)$", t, re.M)
    need(len(actions) == v["steps"], "one action per step")
    need(all(a in ("length", "sqrt", "finish") for a in actions), "an action outside the tools")
    finished = actions[-1] == "finish"
    need(finished == (o["return"] != "" or "finish" in actions), "finish")
    # observations come from the externs
    for m in re.finditer(r"^Action: (length|sqrt)\nAction Input: (.*)\nObservation: (.*)$", t, re.M):
        tool, arg, obs = m.groups()
        if tool == "length":
            need(obs == str(len(arg.encode())), "strlen(%r) observed as %r" % (arg, obs))
        else:
            need(re.fullmatch(r"[0-9.e+-]+|nan|inf", obs), "sqrt observation %r" % obs)
    need(t.endswith("Final answer: %s\n" % o["return"]), "final answer line")


FIELD = r"[A-Za-z][A-Za-z ]{0,19}"


def check_json_regex(inp, o, i):
    v = o["vars"]
    obj = json.loads(v["obj"])
    need(list(obj) == ["name", "country", "population", "capital"], "keys %r" % list(obj))
    need(re.fullmatch(FIELD, obj["name"]) and re.fullmatch(FIELD, obj["country"]), "string fields")
    need(isinstance(obj["population"], int) and re.fullmatch(r"[1-9][0-9]{0,8}", str(obj["population"])),
         "population")
    need(isinstance(obj["capital"], bool), "capital")
    need(json.loads(o["return"]) == obj, "std/json rebuilt a different object")
    for k in ("name", "country"):
        need(re.fullmatch(FIELD, v[k]), "%s does not match its regex" % k)


def check_json_typed(inp, o, i):
    p = json.loads(o["vars"]["profile"])
    need(list(p) == ["name", "house", "age", "alive", "wand"], "keys %r" % list(p))
    need(isinstance(p["name"], str) and 1 <= len(p["name"]) <= 12, "name length")
    need(p["house"] in ("Gryffindor", "Hufflepuff", "Ravenclaw", "Slytherin"), "house enum")
    need(p["age"] in range(11, 18) and isinstance(p["alive"], bool), "age/alive")
    w = p["wand"]
    need(list(w) == ["wood", "core", "length"] and 1 <= len(w["wood"]) <= 10, "wand")
    need(w["core"] in ("phoenix feather", "dragon heartstring", "unicorn hair"), "core enum")
    need(w["length"] in range(9, 15), "length enum")
    need(o["return"] == "%s (%d) of %s: wand of %s and %s" % (p["name"], p["age"], p["house"], w["wood"],
                                                             w["core"]), "typed record values")


def check_nested_calls(inp, o, i):
    v = o["vars"]
    need(is_str_list(v["t"], 2), "t")
    need(o["text"].startswith("Tip 1: %s\n%s\n\nTip 2: " % (v["t"][0], v["d0"])), "tip layout")
    need(o["meta"]["requests"] >= 5, "expected 2 tips + 2 expansions + summary >= 5 requests")


def check_chat(inp, o, i):
    r = o["vars"]["replies"]
    need(is_str_list(r, 2), "replies")
    need(o["text"] == "Turn 1: %s\nTurn 2: %s\n" % (r[0], r[1]), "turn layout")
    need(o["meta"]["cached_tokens"] > 0, "the second turn did not reuse the first")


def check_agents(inp, o, i):
    v = o["vars"]
    need(isinstance(v["p"], int) and 1 <= v["p"] <= 10, "poignancy")
    need(v["where"] in inp["areas"], "location %r not among the areas" % v["where"])
    need(v["t"].startswith("(%s," % inp["persona"]) and v["t"].endswith(")"), "triple")
    need(o["meta"]["requests"] >= 4, "4 calls")
    need(o["meta"]["cached_tokens"] > 0, "the shared persona text was never reused")


def check_ok(inp, o, i):
    need(isinstance(o.get("text"), str), "no text")


CHECKS = {
    "gsm8k_few_shot": check_gsm8k, "hellaswag_select": check_hellaswag, "mmlu_answer": check_mmlu,
    "multi_chain_reasoning": check_multi_chain, "tree_of_thought": check_tot, "llm_judge": check_judge,
    "react_agent": check_react, "json_regex_fields": check_json_regex, "json_typed": check_json_typed,
    "nested_calls": check_nested_calls, "multi_turn_chat": check_chat, "generative_agents": check_agents,
}


def example(name, data, out):
    inputs = [json.loads(l) for l in open(data) if l.strip()]
    results = [json.loads(l) for l in open(out) if l.strip()]
    need(len(results) == len(inputs), "%d results for %d inputs" % (len(results), len(inputs)))
    for i, (inp, o) in enumerate(zip(inputs, results)):
        try:
            need("error" not in o, "runtime error: %s" % o.get("error"))
            for k, val in inp.items():   # results come back in input order
                need(o["vars"][k] == val, "vars.%s is not the input's" % k)
            CHECKS.get(name, check_ok)(inp, o, i)
        except (Bad, KeyError, TypeError, ValueError, IndexError) as e:
            raise Bad("input line %d: %s: %s" % (i + 1, type(e).__name__, e))


def strip_meta(o):
    return {k: o.get(k) for k in ("text", "vars", "return")}


def bench(path, n_lines, n_cfg):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    names = [r["config"] for r in rows]
    need(names == ["full sglc", "no radix cache", "no prefix hoist", "no parallel", "fcfs", "random",
                   "no jump-forward"][:n_cfg], "configurations %r" % names)
    for r in rows:
        need(r["errors"] == 0 and r["num_programs"] == n_lines and r["num_requests"] == n_lines,
             "%s: counts %r" % (r["config"], r))
        need(r["latency"] > 0 and r["throughput_programs"] > 0 and r["output_throughput"] > 0, "rates")
        need(abs(r["throughput_programs"] * r["latency"] - n_lines) < 1e-6 * n_lines + 1e-3, "programs/s")
        need(r["prompt_tokens"] > 0 and 0 <= r["cached_tokens"] <= r["prompt_tokens"], "tokens")
        need(math.isclose(r["cache_hit_rate"], r["cached_tokens"] / r["prompt_tokens"]), "hit rate")
    by = {r["config"]: r for r in rows}
    need(by["no radix cache"]["cached_tokens"] == 0, "no radix cache still cached tokens")
    need(by["full sglc"]["cache_hit_rate"] > 0.7, "few-shot prefix hit rate %.3f" % by["full sglc"]["cache_hit_rate"])
    # greedy: every configuration computes the same outputs
    need(len({(r["prompt_tokens"], r["completion_tokens"]) for r in rows}) == 1,
         "the ablations changed the token counts")


def jump_forward(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    need(len(rows) == 2 and rows[1]["config"] == "ablation", "two rows")
    need(rows[0]["jump_forwards"] > 0, "no jump-forward on a JSON schema with fixed keys")
    need(rows[1]["jump_forwards"] == 0, "--no-jump-forward still jumped")
    need(rows[0]["errors"] == 0 and rows[1]["errors"] == 0, "errors")


STDLIB_PURE = [
    "paris", "2", "8", "", "3", "-12", "", "7 apples", "last line", "1", "-1",
    '"a \\"q\\" \\\\ b\\nc"', '{"name": "Lyon", "n": 3}', '["x", "y z"]', "[]",
    "User: Hi\nAssistant: Hello\nUser: Bye\nAssistant: See you\n",
    "Thought: look it up\nAction: length\nAction Input: cat\nObservation: 3\n",
    "false", "true",
    "Answer the question by interleaving Thought, Action, Action Input and Observation steps.\n"
    "Tools:\n- length: bytes\n- finish: give the final answer as the Action Input\n\nQuestion: Q?\n",
]


def stdlib_gen(o):
    v = o["vars"]
    need(is_str_list(v["chains"], 4), "sample_chains")
    need(isinstance(v["sc"], str), "self_consistency")
    need(is_str_list(v["thoughts"], 3) and all(t == t.strip() and "\n" not in t for t in v["thoughts"]),
         "propose_thoughts")
    need(isinstance(v["score"], int) and 1 <= v["score"] <= 10, "score_thought")
    need(re.fullmatch(r"[A-Za-z0-9 ,.'-]{1,40}", v["name"]), "string_value %r" % v["name"])
    need(isinstance(v["age"], int) and isinstance(v["happy"], bool), "int_value/bool_value")
    need(isinstance(v["turns"], list) and [t["message"] for t in v["turns"]] == ["Hi!", "How are you?"],
         "converse")
    need(all(isinstance(t["reply"], str) and t["reply"] == t["reply"].strip() for t in v["turns"]), "replies")
    need(isinstance(v["reply"], str), "chat_reply")
    s = v["step"]
    need(s["action"] in ("search", "finish") and "\n" not in s["input"] + s["thought"], "react_step")


def main(argv):
    mode = argv[1]
    try:
        if mode == "example":
            example(argv[2], argv[3], argv[4])
        elif mode == "same-vars":
            a, b = (strip_meta(json.load(open(p))) for p in argv[2:4])
            need(a == b, "results differ:\n%s\n%s" % (a, b))
        elif mode == "nested":
            r = json.loads(json.load(open(argv[2]))["return"])
            need(r == ["[0,1]", "[[0,1,2],[10,11,12]]",
                       "[[[0,1],[10,11],[20,21]],[[100,101],[110,111],[120,121]]]", "2", "3", "2"],
                 "return %r" % r)
        elif mode == "stdlib-pure":
            r = json.load(open(argv[2]))["return"]
            need(len(r) == len(STDLIB_PURE), "%d results" % len(r))
            for k, (got, want) in enumerate(zip(r, STDLIB_PURE)):
                need(got == want, "result %d: %r, expected %r" % (k, got, want))
        elif mode == "stdlib-gen":
            stdlib_gen(json.load(open(argv[2])))
        elif mode == "bench":
            bench(argv[2], int(argv[3]), int(argv[4]))
        elif mode == "jump-forward":
            jump_forward(argv[2])
        else:
            raise Bad("unknown mode %s" % mode)
    except (Bad, KeyError, TypeError, ValueError, IndexError) as e:
        print("check: %s: %s" % (type(e).__name__, e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
