%% krbench - krill's VM benchmarks on the BEAM, one subcommand each, doing
%% the same work as their C counterparts in bench/bench_*.c and printing the
%% same RESULT lines (see bench/bench.h) with impl=beam:
%%
%%     pingpong [--rounds N] [--cross] [--unbound] [--cdf FILE]
%%     ring [--procs N] [--rounds R]
%%     skynet
%%     spawn [--procs N] [--short]
%%     fanin [--senders K] [--msgs M] [--off-heap]
%%     call [--rounds N] [--cross] [--unbound] [--cdf FILE] [--gen-server]
%%     restart [--restarts N]
%%     tree [--sups N] [--workers M]
%%     cpu [--jobs N] [--work W] [--reps R] [--at-start]
%%     timers [--timers N]
%%     overload [--senders K] [--msgs M] [--work W]
%%     dist_pingpong [--peer beam|krill] [--rounds N] [--krnode PATH]
%%     dist_stream [--peer beam|krill] [--msgs M] [--size S] [--krnode PATH]
%%
%% Every subcommand also takes --schedulers N and --timeout SECS, as krbench
%% does. The number of schedulers is fixed when the BEAM starts, so start it
%% with +S N:N; --schedulers N (0 = all that were started) only checks that
%% and, when N is smaller, takes schedulers offline. Run it as
%%
%%     erl +S 2:2 +P 2000000 -noshell -pa build/erlang -s krbench main -extra pingpong --cross
%%
%% (-extra, because erl would take "--cross" for one of its own flags).
%% +P: skynet and spawn keep up to 1.1 million processes alive at once, and
%% the BEAM's default limit is 262,144.
%%
%% Each benchmark runs in a fresh process, never in init (which runs -s
%% functions), so that nothing of the boot sequence sits on its heap.
-module(krbench).
-export([main/0, opts/3, now_ns/0, note/2, result/2, run_root/2, decimals/2,
         rss_kb/0, hwm_kb/0, wait_gone/3, yield_or_sleep/1]).

-define(BENCHES, [{"pingpong", bench_pingpong}, {"ring", bench_ring},
                  {"skynet", bench_skynet}, {"spawn", bench_spawn},
                  {"fanin", bench_fanin}, {"call", bench_call},
                  {"restart", bench_restart}, {"tree", bench_tree},
                  {"cpu", bench_cpu},
                  {"timers", bench_timers}, {"overload", bench_overload},
                  {"dist_pingpong", {bench_dist, pingpong}},
                  {"dist_stream", {bench_dist, stream}}]).

main() ->
    erlang:halt(dispatch(init:get_plain_arguments())).

dispatch([Name | Args]) ->
    case lists:keyfind(Name, 1, ?BENCHES) of
        {_, {Mod, Fun}} -> Mod:Fun(Args);
        {_, Mod} -> Mod:run(Args);
        false ->
            note("krbench: no benchmark named '~s' (have: ~s)~n",
                 [Name, string:join([N || {N, _} <- ?BENCHES], ", ")]),
            2
    end;
dispatch([]) ->
    note("usage: erl +S N:N +P 2000000 -noshell -pa build/erlang -s krbench main "
         "-extra BENCHMARK [options]~n", []),
    2.

%% Parse Args against Spec, a list of {"--name", Key, Default} (Default an
%% integer: the option wants a positive number), {"--name", Key, flag} (a
%% bare option, false unless given) or {"--name", Key, string} (any text, a
%% file name say; undefined unless given), plus the options every benchmark
%% takes.
%% Returns {ok, Map} or {error, ExitStatus} after saying what was wrong; on
%% success the timeout is armed and the schedulers are set.
opts(Bench, Args, Spec) ->
    Defaults = maps:from_list([{K, case D of flag -> false; string -> undefined; _ -> D end}
                               || {_, K, D} <- Spec]),
    Common = [{"--schedulers", schedulers, 0}, {"--timeout", timeout, 600}],
    case parse(Bench, Args, Spec ++ Common, Defaults#{schedulers => 0, timeout => 600}) of
        {ok, M} ->
            case set_schedulers(Bench, maps:get(schedulers, M)) of
                ok ->
                    arm_timeout(Bench, maps:get(timeout, M)),
                    {ok, M#{schedulers := erlang:system_info(schedulers_online)}};
                error ->
                    {error, 2}
            end;
        error ->
            {error, 2}
    end.

parse(_, [], _, Acc) ->
    {ok, Acc};
parse(Bench, [Name | Rest], Spec, Acc) ->
    case lists:keyfind(Name, 1, Spec) of
        {_, Key, flag} ->
            parse(Bench, Rest, Spec, Acc#{Key => true});
        {_, Key, string} when Rest =/= [] ->
            [V | Rest1] = Rest,
            parse(Bench, Rest1, Spec, Acc#{Key => V});
        {_, Key, _} when Rest =/= [] ->
            [V | Rest1] = Rest,
            Min = case Key of schedulers -> 0; _ -> 1 end,
            case string:to_integer(V) of
                {N, []} when N >= Min -> parse(Bench, Rest1, Spec, Acc#{Key => N});
                _ ->
                    note("krbench ~s: ~s wants a number >= ~b, not '~s'~n", [Bench, Name, Min, V]),
                    error
            end;
        _ ->
            note("krbench ~s: unknown option or missing value: ~s~n", [Bench, Name]),
            error
    end.

%% The BEAM creates its schedulers at boot (+S); all we can do later is take
%% some of them offline.
set_schedulers(_, 0) ->
    ok;
set_schedulers(Bench, N) ->
    case erlang:system_info(schedulers) of
        Max when N > Max ->
            note("krbench ~s: --schedulers ~b, but this BEAM has ~b: start it with +S ~b:~b~n",
                 [Bench, N, Max, N, N]),
            error;
        _ ->
            N =:= erlang:system_info(schedulers_online) orelse
                erlang:system_flag(schedulers_online, N),
            ok
    end.

%% Like krbench's --timeout: a hang fails a scripted run with status 3.
%% At the highest priority, so that a million runnable processes cannot delay
%% it; and halting without waiting for output to drain, which with a flood of
%% processes can itself take seconds (the note is written synchronously first).
arm_timeout(Bench, Secs) ->
    spawn_opt(fun() ->
                      receive after Secs * 1000 -> ok end,
                      note("~nkrbench ~s: still running after ~b s (--timeout): a hang?~n", [Bench, Secs]),
                      erlang:halt(3, [{flush, false}])
              end, [{priority, max}]),
    ok.

%% Run Fun in a fresh process; its return value is the exit status. A crash
%% is reported and becomes status 1.
run_root(Bench, Fun) ->
    {Pid, Ref} = spawn_monitor(fun() -> exit({rc, Fun()}) end),
    receive
        {'DOWN', Ref, process, Pid, {rc, Rc}} -> Rc;
        {'DOWN', Ref, process, Pid, Why} ->
            note("krbench ~s: the benchmark process crashed: ~p~n", [Bench, Why]),
            1
    end.

now_ns() ->
    erlang:monotonic_time(nanosecond).

%% Human-readable notes go to stderr; stdout carries the results.
note(Fmt, Args) ->
    io:format(standard_error, Fmt, Args).

%% Print "RESULT bench=Bench impl=beam k=v ..." for Fields, a list of {Key,
%% Value}: integers as integers, {float, Decimals, X} with that many
%% decimals, atoms and strings as they are.
result(Bench, Fields) ->
    KVs = [[" ", atom_to_list(K), "=", value(V)] || {K, V} <- Fields],
    io:format("RESULT bench=~s impl=beam~s~n", [Bench, lists:flatten(KVs)]).

value(V) when is_integer(V) -> integer_to_list(V);
value({float, D, X}) -> decimals(D, X);
value(V) when is_atom(V) -> atom_to_list(V);
value(V) when is_list(V) -> V.

decimals(Decimals, X) ->
    float_to_list(X / 1, [{decimals, Decimals}]).

%% The resident set and its peak, in KiB, from /proc/self/status: file reads
%% run inside the emulator (prim_file is a NIF), so "self" is the BEAM.
rss_kb() -> status_kb(<<"VmRSS:">>).
hwm_kb() -> status_kb(<<"VmHWM:">>).

status_kb(Key) ->
    {ok, Bin} = file:read_file("/proc/self/status"),
    [Line] = [L || L <- binary:split(Bin, <<"\n">>, [global]),
                   binary:longest_common_prefix([L, Key]) =:= byte_size(Key)],
    [_, Kb, <<"kB">>] = binary:split(Line, [<<" ">>, <<"\t">>], [global, trim_all]),
    binary_to_integer(Kb).

%% Wait until no more than Base processes are alive (the BEAM's count, as
%% krbench uses the VM's); ok, or error if the count stops falling for 10 s.
wait_gone(Bench, Base, What) ->
    T = now_ns(),
    wait_gone(Bench, Base, What, erlang:system_info(process_count), T, T, 0).

wait_gone(Bench, Base, What, Last, Since, Note, Spins) ->
    case erlang:system_info(process_count) of
        Now when Now =< Base ->
            ok;
        Now ->
            T = now_ns(),
            if
                Now =:= Last, T - Since > 10000000000 ->
                    note("krbench ~s: ~b processes still alive ~s, none gone for 10 s~n",
                         [Bench, Now - Base, What]),
                    error;
                true ->
                    Since1 = if Now =/= Last -> T; true -> Since end,
                    Note1 = if
                                T - Note > 1000000000 ->
                                    note("~s: ~b processes still alive ~s~n", [Bench, Now - Base, What]),
                                    T;
                                true -> Note
                            end,
                    yield_or_sleep(Spins),
                    wait_gone(Bench, Base, What, Now, Since1, Note1, Spins + 1)
            end
    end.

%% Poll politely: yield at first (the answer is usually near), then sleep.
yield_or_sleep(Spins) when Spins < 100000 -> erlang:yield();
yield_or_sleep(_) -> receive after 1 -> ok end.
