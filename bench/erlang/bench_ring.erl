%% bench_ring - a token passed round a ring of N processes R times, the BEAM
%% counterpart of bench/bench_ring.c.
%%
%% The token is the number of hops still to make (a bare integer): the root
%% sends it in with N*R - 1, each process forwards it to the next with one
%% less, and the process that receives 0 tells the root. That is exactly N*R
%% messages, and the last one must land on the ring's last process (checked).
%% One lap is run first, untimed, to start every process.
%%
%% The processes are spawned without options: where they run is the BEAM's
%% business, as it is krill's in the C version.
-module(bench_ring).
-export([run/1]).

run(Args) ->
    case krbench:opts("ring", Args, [{"--procs", procs, 1000}, {"--rounds", rounds, 1000}]) of
        {error, Rc} -> Rc;
        {ok, #{procs := N, rounds := R, schedulers := S}} ->
            krbench:run_root("ring", fun() -> root(N, R, S) end)
    end.

root(N, R, Scheds) ->
    Root = self(),
    Pids = list_to_tuple([spawn(fun() -> start(Root) end) || _ <- lists:seq(1, N)]),
    [element(I, Pids) ! {next, element(I rem N + 1, Pids)} || I <- lists:seq(1, N)],
    krbench:note("ring: ~b processes, ~b laps~n", [N, R]),
    Last = element(N, Pids),
    case run_laps(element(1, Pids), Last, N, 1) of
        ok ->
            T0 = krbench:now_ns(),
            case run_laps(element(1, Pids), Last, N, R) of
                ok ->
                    Ns = krbench:now_ns() - T0,
                    Msgs = N * R,
                    [P ! stop || P <- tuple_to_list(Pids)],
                    krbench:result("ring", [{schedulers, Scheds}, {procs, N}, {rounds, R},
                                            {ns_per_msg, {float, 2, Ns / Msgs}},
                                            {secs, {float, 4, Ns / 1.0e9}}]),
                    io:format("ring: ~b messages round ~b processes in ~s s: ~s ns per message~n",
                              [Msgs, N, krbench:decimals(3, Ns / 1.0e9), krbench:decimals(2, Ns / Msgs)]),
                    0;
                error -> 1
            end;
        error -> 1
    end.

start(Root) ->
    receive {next, Next} -> loop(Root, Next) end.

loop(Root, Next) ->
    receive
        0 ->
            Root ! {done, self()},
            loop(Root, Next);
        Left when is_integer(Left) ->
            Next ! Left - 1,
            loop(Root, Next);
        stop ->
            ok
    end.

%% Send the token round Laps times; ok, or error after saying what went wrong.
run_laps(First, Last, N, Laps) ->
    First ! N * Laps - 1,
    wait_token(Last, krbench:now_ns()).

wait_token(Last, T0) ->
    receive
        {done, Last} -> ok;
        {done, _} ->
            krbench:note("krbench ring: the token ended at the wrong process~n", []),
            error
    after 2000 ->
            krbench:note("ring: token still going after ~b s~n", [(krbench:now_ns() - T0) div 1000000000]),
            wait_token(Last, T0)
    end.
