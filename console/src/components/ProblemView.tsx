// Shows a failed call; for a missing or refused token it offers to sign in
// again (the console's own sign-in screen).
import { isAuthProblem, type Problem } from "../errors";
import { setToken } from "../api";

export function ProblemView({ problem, testid = "form-error" }: { problem: Problem; testid?: string }) {
  return (
    <div class="notice error" role="alert" data-testid={testid}>
      {problem.message}
      {isAuthProblem(problem) && (
        <button
          type="button"
          onClick={() => {
            setToken(null);
            location.reload();
          }}
        >
          Sign in with another token
        </button>
      )}
    </div>
  );
}
