%% bench_pingpong - the round trip of a small message between two processes,
%% the BEAM counterpart of bench/bench_pingpong.c.
%%
%% ping sends {self(), Round} to pong, pong sends {self(), Round} back, and
%% ping times each round trip with erlang:monotonic_time(nanosecond) into the
%% log-linear histogram of krbench_hist (the buckets of bench/hist.c): mean,
%% p50, p99 and p99.9 come from there. As in C, each timed interval includes
%% one clock read; clock_ns is the p50 of two back-to-back reads in this run.
%%
%% Placement. krill binds both processes to scheduler 0 by default, and with
%% --cross ping to scheduler 0 and pong to scheduler 1. The BEAM has no
%% documented way to do that, but erlang:spawn_opt/2 accepts an undocumented
%% {scheduler, N} option (OTP 25; N counts from 1) that binds the new process
%% to scheduler N's run queue for its whole life, so it is never migrated.
%% That is what is used here: both on scheduler 1 by default, ping on 1 and
%% pong on 2 with --cross. Both processes sample erlang:system_info(
%% scheduler_id) every 65,536 rounds and the RESULT line reports what they
%% saw (ping_on, pong_on), so a placement that did not hold shows.
%% --unbound spawns both without the option: the BEAM's own placement
%% (placement=beam).
-module(bench_pingpong).
-export([run/1]).

run(Args) ->
    Spec = [{"--rounds", rounds, 1000000}, {"--cross", cross, flag}, {"--unbound", unbound, flag}],
    case krbench:opts("pingpong", Args, Spec) of
        {error, Rc} -> Rc;
        {ok, #{cross := true, unbound := true}} ->
            krbench:note("krbench pingpong: --cross and --unbound exclude each other~n", []),
            2;
        {ok, #{cross := true, schedulers := S}} when S < 2 ->
            krbench:note("krbench pingpong: --cross needs at least 2 schedulers (have ~b)~n", [S]),
            2;
        {ok, #{rounds := Rounds, cross := Cross, unbound := Unbound, schedulers := S}} ->
            Placement = if Cross -> cross; Unbound -> beam; true -> same end,
            krbench:run_root("pingpong", fun() -> root(Rounds, min(Rounds div 10, 10000), Placement, S) end)
    end.

root(Rounds, Warmup, Placement, Scheds) ->
    ClockNs = clock_cost(),
    {PingOpt, PongOpt} = case Placement of
                             same -> {[{scheduler, 1}], [{scheduler, 1}]};
                             cross -> {[{scheduler, 1}], [{scheduler, 2}]};
                             beam -> {[], []}
                         end,
    Root = self(),
    Pong = spawn_opt(fun() -> pong([]) end, PongOpt),
    Ping = spawn_opt(fun() -> Root ! {self(), ping(Pong, Rounds, Warmup)} end, PingOpt),
    krbench:note("pingpong: ~b rounds (+~b warm-up), ~s~n",
                 [Rounds, Warmup, case Placement of
                                      same -> "both bound to scheduler 1";
                                      cross -> "ping bound to scheduler 1, pong to scheduler 2";
                                      beam -> "placed by the BEAM"
                                  end]),
    case wait_ping(Ping) of
        {error, Why} ->
            krbench:note("krbench pingpong: ~s~n", [Why]),
            1;
        {ok, H, WallNs, PingOn} ->
            Pong ! {stop, self()},
            PongOn = receive {Pong, On} -> On end,
            report(H, WallNs, ClockNs, Rounds, Placement, Scheds, PingOn, PongOn)
    end.

wait_ping(Ping) ->
    receive
        {Ping, Result} -> Result
    after 5000 ->
            krbench:note("pingpong: still waiting for ping to finish~n", []),
            wait_ping(Ping)
    end.

pong(On) ->
    receive
        {From, I} when is_pid(From) ->
            From ! {self(), I},
            pong(if I band 16#ffff =:= 0 -> sample(On); true -> On end);
        {stop, From} ->
            From ! {self(), sample(On)}
    end.

ping(Pong, Rounds, Warmup) ->
    T = krbench:now_ns(),
    ping(Pong, 0, Rounds + Warmup, Warmup, krbench_hist:new(), 0, T, []).

ping(_, I, Total, _, H, Wall0, _, On) when I =:= Total ->
    {ok, H, krbench:now_ns() - Wall0, sample(On)};
ping(Pong, I, Total, Warmup, H, Wall0, LastNote, On) ->
    T0 = erlang:monotonic_time(nanosecond),
    Pong ! {self(), I},
    receive Back -> ok end,
    T1 = erlang:monotonic_time(nanosecond),
    case Back of
        {Pong, I} ->
            H1 = if I >= Warmup -> krbench_hist:record(H, T1 - T0); true -> H end,
            W1 = if I =:= Warmup -> T0; true -> Wall0 end,
            if
                I band 16#ffff =:= 0 ->
                    Note = if
                               T1 - LastNote > 1000000000 ->
                                   krbench:note("pingpong: ~b/~b rounds~n", [I, Total]),
                                   T1;
                               true -> LastNote
                           end,
                    ping(Pong, I + 1, Total, Warmup, H1, W1, Note, sample(On));
                true ->
                    ping(Pong, I + 1, Total, Warmup, H1, W1, LastNote, On)
            end;
        _ ->
            {error, io_lib:format("ping: round ~b got back a wrong message: ~p", [I, Back])}
    end.

%% The schedulers this process has been seen on.
sample(On) ->
    lists:usort([erlang:system_info(scheduler_id) | On]).

on(On) ->
    lists:join("+", [integer_to_list(S) || S <- On]).

%% The p50 of what an empty timed interval measures.
clock_cost() ->
    clock_cost(100000, krbench_hist:new()).

clock_cost(0, H) ->
    krbench_hist:percentile(H, 50);
clock_cost(N, H) ->
    T0 = erlang:monotonic_time(nanosecond),
    T1 = erlang:monotonic_time(nanosecond),
    clock_cost(N - 1, krbench_hist:record(H, T1 - T0)).

report(H, WallNs, ClockNs, Rounds, Placement, Scheds, PingOn, PongOn) ->
    case krbench_hist:count(H) of
        Rounds ->
            P = fun(Pc) -> krbench_hist:percentile(H, Pc) end,
            Mean = krbench_hist:mean(H),
            krbench:result("pingpong",
                           [{schedulers, Scheds}, {placement, Placement},
                            {rtt_mean_ns, {float, 1, Mean}}, {p50_ns, P(50)}, {p99_ns, P(99)},
                            {p999_ns, P(99.9)}, {max_ns, P(100)},
                            {wall_ns_per_rtt, {float, 1, WallNs / Rounds}}, {clock_ns, ClockNs},
                            {rounds, Rounds}, {ping_on, on(PingOn)}, {pong_on, on(PongOn)}]),
            io:format("pingpong (~s scheduler): round trip mean ~s ns, p50 ~b ns, p99 ~b ns, "
                      "p99.9 ~b ns, max ~b ns over ~b rounds (a clock read: ~b ns; "
                      "ping ran on scheduler ~s, pong on ~s)~n",
                      [Placement, krbench:decimals(1, Mean), P(50), P(99), P(99.9), P(100), Rounds,
                       ClockNs, on(PingOn), on(PongOn)]),
            0;
        N ->
            krbench:note("krbench pingpong: timed ~b rounds, wanted ~b~n", [N, Rounds]),
            1
    end.
