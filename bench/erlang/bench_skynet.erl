%% bench_skynet - the skynet benchmark on the BEAM, the counterpart of
%% bench/bench_skynet.c: a 10-ary tree of 1,111,111 processes, six levels
%% below the root. Each leaf sends its index to its parent; each parent sums
%% its ten children's answers and sends the sum up. The sum of 0..999,999 is
%% 499,999,500,000.
%%
%% Each answer also carries how many processes its subtree spawned, counted
%% by the spawning parents, so procs is what was really created. Needs +P
%% above 1.1 million: all of them may be alive at once.
-module(bench_skynet).
-export([run/1]).

-define(SIZE, 1000000).    % leaves
-define(PROCS, 1111111).   % 1 + 10 + ... + 10^6
-define(SUM, 499999500000).

run(Args) ->
    case krbench:opts("skynet", Args, []) of
        {error, Rc} -> Rc;
        {ok, #{schedulers := S}} ->
            case erlang:system_info(process_limit) of
                Limit when Limit < ?PROCS + 100 ->
                    krbench:note("krbench skynet: the process limit is ~b; start erl with +P 2000000~n",
                                 [Limit]),
                    2;
                _ ->
                    krbench:run_root("skynet", fun() -> root(S) end)
            end
    end.

root(Scheds) ->
    Self = self(),
    krbench:note("skynet: ~b processes~n", [?PROCS]),
    T0 = krbench:now_ns(),
    spawn(fun() -> skynet(Self, 0, ?SIZE) end),
    {Sum, Procs0} = wait_answer(T0),
    Ns = krbench:now_ns() - T0,
    Procs = Procs0 + 1, % the top itself
    io:format("skynet: ~b processes summed to ~b in ~s s (~b ns per process)~n",
              [Procs, Sum, krbench:decimals(3, Ns / 1.0e9), Ns div Procs]),
    if
        Sum =/= ?SUM; Procs =/= ?PROCS ->
            krbench:note("krbench skynet: wrong result: sum ~b (want ~b), procs ~b (want ~b)~n",
                         [Sum, ?SUM, Procs, ?PROCS]),
            1;
        true ->
            krbench:result("skynet", [{schedulers, Scheds}, {secs, {float, 4, Ns / 1.0e9}},
                                      {sum, Sum}, {procs, Procs}]),
            0
    end.

wait_answer(T0) ->
    receive
        {answer, Sum, Procs} -> {Sum, Procs}
    after 2000 ->
            krbench:note("skynet: still running after ~b s: ~b processes alive~n",
                         [(krbench:now_ns() - T0) div 1000000000, erlang:system_info(process_count)]),
            wait_answer(T0)
    end.

skynet(Parent, Num, 1) ->
    Parent ! {answer, Num, 0};
skynet(Parent, Num, Size) ->
    Self = self(),
    Step = Size div 10,
    spawn_kids(Self, Num, Step, 0),
    collect(Parent, 10, 0, 10).

spawn_kids(_, _, _, 10) ->
    ok;
spawn_kids(Self, Num, Step, I) ->
    spawn(fun() -> skynet(Self, Num + I * Step, Step) end),
    spawn_kids(Self, Num, Step, I + 1).

collect(Parent, 0, Sum, Procs) ->
    Parent ! {answer, Sum, Procs};
collect(Parent, Left, Sum, Procs) ->
    receive {answer, S, P} -> collect(Parent, Left - 1, Sum + S, Procs + P) end.
