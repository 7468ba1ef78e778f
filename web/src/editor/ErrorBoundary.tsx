/**
 * React error boundaries for the editor's parts: an error while drawing one part (a history
 * row with data the editor did not expect, a node the canvas cannot draw) shows a small
 * error box in that part's place instead of unmounting the whole editor (a blank page).
 *
 *   PartBoundary  wraps a part; after an error it shows ErrorBox until Retry (draw again)
 *                 or Dismiss (hide the part until the page is reloaded)
 *   ErrorBox      the box: what could not be shown, the error's message, and the ways out:
 *                 Retry, the part's own actions (the canvas: Undo), Dismiss, Reload the page
 *
 * Test ids: error-box (data-area), error-box-retry, error-box-dismiss, error-box-reload,
 * error-box-action-<index>.
 */
import { Component, type ErrorInfo, type ReactNode } from "react";

export interface BoxAction {
  label: string;
  run: () => void;
}

interface BoundaryProps {
  /** What the part is, for the box ("history", "canvas"). */
  area: string;
  /** Ways out besides Retry / Dismiss / Reload (e.g. undo the edit that broke the canvas). */
  actions?: BoxAction[];
  children?: ReactNode;
}

interface BoundaryState {
  error: Error | null;
  dismissed: boolean;
}

export class PartBoundary extends Component<BoundaryProps, BoundaryState> {
  state: BoundaryState = { error: null, dismissed: false };

  static getDerivedStateFromError(error: unknown): Partial<BoundaryState> {
    return { error: error instanceof Error ? error : new Error(String(error)), dismissed: false };
  }

  componentDidCatch(error: unknown, info: ErrorInfo): void {
    console.error(`nodegraph: the ${this.props.area} could not be shown:`, error, info.componentStack);
  }

  render(): ReactNode {
    const { error, dismissed } = this.state;
    if (!error) return this.props.children;
    if (dismissed) return null;
    return (
      <ErrorBox
        area={this.props.area}
        message={error.message}
        actions={this.props.actions}
        onRetry={() => this.setState({ error: null })}
        onDismiss={() => this.setState({ dismissed: true })}
      />
    );
  }
}

export function ErrorBox({ area, message, actions = [], onRetry, onDismiss }: {
  area: string;
  message: string;
  actions?: BoxAction[];
  onRetry: () => void;
  onDismiss: () => void;
}) {
  return (
    <div className="ng-error-box" data-testid="error-box" data-area={area} role="alert">
      <div>
        <b>The {area} could not be shown</b>: {String(message)}
      </div>
      <div className="ng-error-box-actions">
        <button type="button" data-testid="error-box-retry" onClick={onRetry}>
          Retry
        </button>
        {actions.map((action, i) => (
          <button
            type="button"
            key={action.label}
            data-testid={`error-box-action-${i}`}
            onClick={() => {
              action.run();
              onRetry();
            }}
          >
            {action.label}
          </button>
        ))}
        <button type="button" data-testid="error-box-dismiss" onClick={onDismiss} title="hide this until the page is reloaded">
          Dismiss
        </button>
        <button type="button" data-testid="error-box-reload" onClick={() => globalThis.location?.reload()}>
          Reload the page
        </button>
      </div>
    </div>
  );
}
